// Browser end-to-end test: the real `triposg serve` with the tiny fixture weights on the CPU,
// driven in Debian's headless Chromium. Drops a photo, sees the cut-out, generates, watches the
// progress reach 100%, checks that the viewer draws the model, and downloads the STL.
// Usage: node web/tests/ui.mjs [path/to/triposg]   (screenshot: target/ui-test/finished.png)
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

const server = spawn(bin, ['serve', '--port', '0', '--devices', 'cpu', '--residency', 'keep',
  '--weights', join(root, 'tests/fixtures/tiny-surface'), '--outputs', outputs], { stdio: ['ignore', 'ignore', 'pipe'] });
let log = '';
const base = await new Promise((ok, no) => {
  server.stderr.on('data', (d) => {
    log += d;
    const m = log.match(/serving on (http:\/\/[^\s]+)/);
    if (m) ok(m[1]);
  });
  server.on('exit', (code) => no(new Error(`server exited (${code}):\n${log}`)));
  setTimeout(() => no(new Error(`server did not start:\n${log}`)), 60_000);
});

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
  await page.waitForSelector('#viewer[data-loaded]', { timeout: 60_000 });
  const dims = await page.textContent('#dimensions');
  if (!/mm/.test(dims)) fail(`no dimensions shown: "${dims}"`);

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

  await page.waitForSelector('#history li');
  await page.screenshot({ path: join(artifacts, 'finished.png'), fullPage: true });
  if (consoleErrors.length) fail(`page errors: ${consoleErrors.join('; ')}`);
  console.log(`ui test passed: cut-out ${cut[0]}px, ${(drawn * 100).toFixed(1)}% of the viewer drawn, ${dims}, STL ${size} bytes`);
} catch (e) {
  if (page) await page.screenshot({ path: join(artifacts, 'failed.png'), fullPage: true }).catch(() => {});
  console.error(`ui test FAILED: ${e.message}\nserver log:\n${log}`);
  process.exitCode = 1;
} finally {
  await browser.close();
  server.kill('SIGTERM');
}
