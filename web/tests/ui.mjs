// Browser end-to-end test: the real `triposg serve` with the tiny fixture weights on the CPU,
// driven in Debian's headless Chromium. Drops a photo, sees the cut-out, sets print options,
// generates, watches the progress reach 100%, checks that the viewer draws the final print mesh
// at the report's size (and toggles to the raw one), downloads the print STL and checks its
// height, then looks at the page on a phone-sized screen, at a server without weights, and at
// a page whose module failed to load.
// Usage: node web/tests/ui.mjs [path/to/triposg]
// Screenshots: target/ui-test/finished.png, phone.png, no-weights.png
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, mkdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const bin = process.argv[2] || join(root, 'target/debug/triposg');
const artifacts = join(root, 'target/ui-test');
mkdirSync(artifacts, { recursive: true });
const outputs = mkdtempSync(join(tmpdir(), 'triposg-ui-'));

function fail(msg) { throw new Error(msg); }

// Z extent of a binary STL, in its units (mm).
function stlHeight(buf) {
  const n = buf.readUInt32LE(80);
  let lo = Infinity, hi = -Infinity;
  for (let i = 0; i < n; i++) {
    for (let v = 0; v < 3; v++) {
      const z = buf.readFloatLE(84 + i * 50 + 12 + v * 12 + 8);
      lo = Math.min(lo, z); hi = Math.max(hi, z);
    }
  }
  return hi - lo;
}

let log = '';
function serve(weights, outputs) {
  const server = spawn(bin, ['serve', '--port', '0', '--devices', 'cpu', '--residency', 'keep',
    '--weights', weights, '--outputs', outputs], { stdio: ['ignore', 'ignore', 'pipe'] });
  let own = '';
  const base = new Promise((ok, no) => {
    server.stderr.on('data', (d) => {
      log += d;
      own += d;
      // Only a whole line: stderr can arrive cut mid-address, and a cut address ("http://12")
      // sent Chromium elsewhere (the CI flakes where a page never showed its banner or form).
      const m = own.match(/serving on (http:\/\/\S+)\n/);
      if (m) ok(m[1]);
    });
    server.on('exit', (code) => no(new Error(`server exited (${code}):\n${log}`)));
    setTimeout(() => no(new Error(`server did not start:\n${log}`)), 60_000);
  });
  return { server, base };
}
const main = serve(join(root, 'tests/fixtures/tiny-surface'), outputs);
const server = main.server;
const base = await main.base;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--use-angle=swiftshader', '--enable-unsafe-swiftshader'],
});
let page;
try {
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 900 } });
  page = await context.newPage();
  const consoleErrors = [];
  page.on('pageerror', (e) => consoleErrors.push(e.message));
  await page.goto(base);

  // Small, fast model settings (the fixture weights are tiny).
  await page.click('summary');
  await page.fill('input[name=num_tokens]', '16');
  await page.fill('input[name=octree_depth]', '7');
  await page.fill('input[name=steps]', '3');
  // Print options: 40 mm high, checked against a printer, on a round base.
  await page.fill('input[name=size_mm]', '40');
  await page.selectOption('select[name=size_axis]', 'height');
  await page.waitForSelector('select[name=printer] option[value="prusa-mk4"]', { state: 'attached' });
  await page.selectOption('select[name=printer]', 'prusa-mk4');
  await page.selectOption('select[name=base]', 'round');
  // The fixture's random weights make a ragged surface: a coarse voxel rebuild keeps the print
  // stage to seconds and the files small.
  await page.selectOption('select[name=solid]', 'solidify');
  await page.fill('input[name=pitch]', '1');

  // Drop the photo onto the drop zone, as a user dragging a file would.
  const photo = readFileSync(join(root, 'tests/fixtures/images/qwvfsd_rgba.png')).toString('base64');
  const transfer = await page.evaluateHandle((b64) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const dt = new DataTransfer();
    dt.items.add(new File([bytes], 'qwvfsd_rgba.png', { type: 'image/png' }));
    return dt;
  }, photo);
  await page.dispatchEvent('#drop-zone', 'drop', { dataTransfer: transfer });
  await page.waitForFunction(() => document.getElementById('cutout').naturalWidth > 0, null, { timeout: 60_000 });
  const cut = await page.evaluate(() => [document.getElementById('cutout').naturalWidth, document.getElementById('cutout').naturalHeight]);
  if (cut[0] !== cut[1]) fail(`cut-out preview is not square: ${cut}`);

  await page.click('#generate-btn');
  await page.waitForFunction(() => document.getElementById('progress-text').textContent === 'Done', null, { timeout: 120_000 });
  const width = await page.evaluate(() => document.getElementById('bar-fill').style.width);
  if (width !== '100%') fail(`progress bar at ${width}`);
  await page.waitForSelector('#viewer[data-shown="print"]', { timeout: 60_000 });
  const dims = await page.textContent('#dimensions');
  const report = await page.textContent('#report');
  // The viewer shows the print mesh at its true size: the report's numbers.
  const viewH = Number((dims.match(/× ([\d.]+) mm/) || [])[1]);
  const reportH = Number((report.match(/Size[^×]*×[^×]*× ([\d.]+) mm/) || [])[1]);
  if (!(viewH > 0) || Math.abs(viewH - reportH) > 0.11) fail(`viewer ${dims} vs report ${report}`);
  if (!/Original Prusa MK4: fits/.test(report)) fail(`no printer fit in the report: ${report}`);
  if (!/PLA\d+ g/.test(report)) fail(`no material estimate in the report: ${report}`);

  // The WebGL canvas shows more than the background: count pixels of the model's colours.
  await page.waitForTimeout(500);
  const drawn = await page.evaluate(() => {
    const gl = document.querySelector('#viewer canvas');
    const c = document.createElement('canvas');
    c.width = gl.width; c.height = gl.height;
    const ctx = c.getContext('2d');
    ctx.drawImage(gl, 0, 0);
    const px = ctx.getImageData(0, 0, c.width, c.height).data;
    let lit = 0;
    for (let i = 0; i < px.length; i += 4) if (px[i] + px[i + 1] + px[i + 2] > 200) lit++;
    return lit / (px.length / 4);
  });
  if (!(drawn > 0.005)) fail(`viewer looks blank: ${(drawn * 100).toFixed(2)}% lit pixels`);

  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.click('#downloads a:text-is("STL")'),
  ]);
  const stl = join(artifacts, 'model.stl');
  await download.saveAs(stl);
  const size = statSync(stl).size;
  if (size < 84 + 50) fail(`STL download is only ${size} bytes`);
  const stlH = stlHeight(readFileSync(stl));
  if (Math.abs(stlH - reportH) > 0.11) fail(`the STL is ${stlH} mm high, the report says ${reportH}`);

  // The raw mesh, and back to the print mesh.
  await page.check('#show-raw');
  await page.waitForSelector('#viewer[data-shown="raw"]');
  await page.check('#show-print');
  await page.waitForSelector('#viewer[data-shown="print"]');

  await page.waitForSelector('#history li');
  await page.screenshot({ path: join(artifacts, 'finished.png'), fullPage: true });
  if (consoleErrors.length) fail(`page errors: ${consoleErrors.join('; ')}`);

  // A phone: the same session's page at 390 px wide shows the job from the history without
  // anything wider than the screen.
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true,
    storageState: await context.storageState() });
  const small = await phone.newPage();
  small.on('pageerror', (e) => consoleErrors.push(e.message));
  await small.goto(base);
  await small.click('#history li');
  await small.waitForSelector('#viewer[data-shown="print"]', { timeout: 60_000 });
  const overflow = await small.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  if (overflow > 0) fail(`the phone page is ${overflow} px wider than the screen`);
  const box = await small.locator('#generate-btn').boundingBox();
  if (!box || box.width > 390 || box.height < 40) fail(`generate button on a phone: ${JSON.stringify(box)}`);
  await small.screenshot({ path: join(artifacts, 'phone.png'), fullPage: true });
  await phone.close();

  // No weights, in a browser that cannot draw WebGL (canvas contexts refused, as with WebGL
  // switched off): the page still runs, says so in the viewer, and offers the weights download.
  const bare = serve(mkdtempSync(join(tmpdir(), 'triposg-noweights-')), mkdtempSync(join(tmpdir(), 'triposg-ui-')));
  const other = await browser.newPage();
  // What the page saw, for a failure: a module that failed to load is only a console message.
  const seen = [];
  const opened = Date.now();
  try {
    other.on('pageerror', (e) => consoleErrors.push(`no-weights page: ${e.message}`));
    other.on('console', (m) => seen.push(`console ${m.type()}: ${m.text()}`));
    other.on('requestfailed', (r) => seen.push(`failed ${r.url()}: ${r.failure()?.errorText}`));
    other.on('response', (r) => seen.push(`${r.status()} ${r.url()} at ${Date.now() - opened} ms`));
    await other.addInitScript(() => { HTMLCanvasElement.prototype.getContext = () => null; });
    await other.goto(await bare.base);
    await other.waitForSelector('#weights-banner:not([hidden])', { timeout: 30_000 });
    const text = await other.textContent('#weights-banner');
    if (!/not on the server yet/.test(text) || !(await other.isEnabled('#weights-btn'))) fail(`weights notice: ${text}`);
    const empty = await other.textContent('#viewer-empty');
    if (!/cannot draw the 3D view/.test(empty)) fail(`without WebGL the viewer says: ${empty}`);
    await other.screenshot({ path: join(artifacts, 'no-weights.png') });

    // A module that cannot load stops app.js silently: the page must say so instead.
    const broken = await browser.newPage();
    await broken.route('**/viewer.js', (r) => r.abort());
    await broken.goto(await bare.base);
    await broken.waitForSelector('#banner:not([hidden])', { timeout: 30_000 });
    const said = await broken.textContent('#banner');
    if (!/could not load its scripts/.test(said)) fail(`with a module missing the page says: ${said}`);
    await broken.close();
  } catch (e) {
    await other.screenshot({ path: join(artifacts, 'no-weights-failed.png') }).catch(() => {});
    const banners = await other.evaluate(() => ['banner', 'weights-banner', 'viewer-empty']
      .map((id) => `#${id} hidden=${document.getElementById(id)?.hidden}: ${document.getElementById(id)?.textContent.trim().slice(0, 120)}`))
      .catch((err) => [`page not readable: ${err.message}`]);
    fail(`${e.message}\nno-weights page errors: ${consoleErrors.join('; ') || 'none'}\n${banners.join('\n')}\nits requests after ${Date.now() - opened} ms:\n${seen.join('\n')}`);
  } finally {
    bare.server.kill('SIGTERM');
  }
  if (consoleErrors.length) fail(`page errors: ${consoleErrors.join('; ')}`);
  console.log(`ui test passed: cut-out ${cut[0]}px, ${(drawn * 100).toFixed(1)}% of the viewer drawn, ${dims}, STL ${size} bytes ${stlH.toFixed(2)} mm high, phone width ok`);
} catch (e) {
  if (page) await page.screenshot({ path: join(artifacts, 'failed.png'), fullPage: true }).catch(() => {});
  console.error(`ui test FAILED: ${e.message}\nserver log:\n${log}`);
  process.exitCode = 1;
} finally {
  await browser.close();
  server.kill('SIGTERM');
}
