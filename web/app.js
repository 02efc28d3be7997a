// The page: pick a photo, preview the cut-out, submit a job with its print options, follow its
// progress over SSE, show the final print mesh (or the raw one) with the report's numbers,
// list this browser's past jobs, and fetch the model weights when the server has none.
import { Viewer } from '/viewer.js';

// Every module loaded (boot.js says so when this never runs).
window.triposgStarted = true;

const $ = (id) => document.getElementById(id);
// A browser without WebGL (switched off, or its GPU process gone) still gets the whole page:
// progress, report and downloads; only the 3D view says why it is empty.
const viewer = (() => {
  try { return new Viewer($('viewer')); } catch (err) {
    $('viewer-empty').textContent = `This browser cannot draw the 3D view (${err.message}); the downloads below still work.`;
    return null;
  }
})();
let file = null;
let current = null; // { id, source }
let shown = null; // { job, candidate }
const PRESETS = {
  fast: { steps: 25, octree_depth: 8, faces: 100000 },
  standard: { steps: 50, octree_depth: 9, faces: -1 },
  high: { steps: 75, octree_depth: 10, faces: -1 },
};
const STAGES = { prepare: 'Preparing the photo', encode: 'Reading the photo', denoise: 'Shaping', decode: 'Computing the surface', surface: 'Building the mesh', print: 'Preparing the print' };
// Rough share of a job's time per stage, to move one progress bar through all of them.
const WEIGHT = { prepare: [0, 3], encode: [3, 5], denoise: [5, 65], decode: [65, 88], surface: [88, 92], print: [92, 100] };
const PRINT_FIELDS = ['size_mm', 'size_axis', 'printer', 'fit_printer', 'orientation', 'base', 'base_height', 'cut', 'hollow', 'drain_holes', 'solid', 'pitch', 'smoothing', 'technology', 'infill'];

function say(text, error = false) {
  $('message').textContent = text;
  $('message').classList.toggle('error', error);
}

async function errorText(r) {
  try { return (await r.json()).error || r.statusText; } catch { return `${r.status} ${r.statusText}`; }
}

const mm = (x) => `${x.toFixed(1)}`;
const size3 = (s) => `${mm(s[0])} × ${mm(s[1])} × ${mm(s[2])} mm`;

async function choose(f) {
  if (!f || !f.type.startsWith('image/')) { say('That is not an image: pick a photo (JPEG, PNG, WebP...).', true); return; }
  file = f;
  $('photo').src = URL.createObjectURL(f);
  $('cutout').removeAttribute('src');
  $('cutout-caption').textContent = 'cutting out...';
  $('generate-btn').disabled = false;
  say('');
  const form = new FormData();
  form.append('image', f);
  form.append('margin', $('params').margin.value);
  const r = await fetch('/api/prepare', { method: 'POST', body: form });
  if (r.ok) {
    $('cutout').src = URL.createObjectURL(await r.blob());
    $('cutout-caption').textContent = 'what the model will see';
  } else {
    $('cutout-caption').textContent = '';
    say(await errorText(r), true);
  }
}

$('drop-zone').addEventListener('click', () => $('file-input').click());
$('drop-zone').addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') $('file-input').click(); });
$('camera-btn').addEventListener('click', () => $('camera-input').click());
for (const id of ['file-input', 'camera-input']) $(id).addEventListener('change', (e) => choose(e.target.files[0]));
$('drop-zone').addEventListener('dragover', (e) => { e.preventDefault(); $('drop-zone').classList.add('dragover'); });
$('drop-zone').addEventListener('dragleave', () => $('drop-zone').classList.remove('dragover'));
$('drop-zone').addEventListener('drop', (e) => {
  e.preventDefault();
  $('drop-zone').classList.remove('dragover');
  choose(e.dataTransfer.files[0]);
});
document.addEventListener('paste', (e) => {
  const item = [...e.clipboardData.items].find((i) => i.type.startsWith('image/'));
  if (item) choose(item.getAsFile());
});
$('random-seed').addEventListener('click', () => { $('params').seed.value = Math.floor(Math.random() * 2 ** 31); });
for (const b of document.querySelectorAll('[data-preset]')) {
  b.addEventListener('click', () => {
    for (const [k, v] of Object.entries(PRESETS[b.dataset.preset])) $('params')[k].value = v;
  });
}
$('params').print.addEventListener('change', (e) => { $('print-options').classList.toggle('off', !e.target.checked); });

// The form as the API reads it: the size's number and axis become one `size` (`height:40`),
// and without print files none of the print fields is sent.
function jobForm() {
  const form = new FormData($('params'));
  const printing = $('params').print.checked;
  const axis = form.get('size_axis');
  const size = form.get('size_mm');
  for (const f of PRINT_FIELDS) if (f.startsWith('size_') || !printing) form.delete(f);
  if (printing) form.set('size', axis ? `${axis}:${size}` : size);
  else form.set('print', 'false');
  if (form.get('solid') !== 'solidify') form.delete('pitch');
  return form;
}

function showProgress(text, percent) {
  $('progress').hidden = false;
  $('progress-text').textContent = text;
  if (percent !== undefined) $('bar-fill').style.width = `${percent}%`;
}

function onEvent(type, e) {
  if (type === 'queued') showProgress(e.position === 1 ? 'Next in line...' : `Waiting: ${e.position - 1} job(s) ahead`, 0);
  else if (type === 'started') showProgress(`Starting on ${e.device}...`, 0);
  else if (type === 'stage' || type === 'step') {
    const [a, b] = WEIGHT[e.stage] || [0, 100];
    const within = type === 'step' && e.total > 0 ? e.done / e.total : 0;
    const per = 100 / e.candidates;
    const percent = (e.candidate - 1) * per + (a + (b - a) * within) * per / 100;
    const cand = e.candidates > 1 ? ` (shape ${e.candidate} of ${e.candidates})` : '';
    const steps = type === 'step' && e.total > 0 ? `: step ${e.done} of ${e.total}` : '';
    showProgress(`${STAGES[e.stage] || e.stage}${steps}${cand}`, percent);
  }
}

function follow(id) {
  if (current) current.source.close();
  const source = new EventSource(`/api/jobs/${id}/events`);
  current = { id, source };
  $('generate-btn').disabled = true;
  for (const t of ['queued', 'started', 'stage', 'step']) source.addEventListener(t, (m) => onEvent(t, JSON.parse(m.data)));
  $('cancel-btn').hidden = false;
  const end = () => { source.close(); current = null; $('generate-btn').disabled = !file; $('cancel-btn').hidden = true; };
  source.addEventListener('done', (m) => {
    end();
    showProgress('Done', 100);
    show(JSON.parse(m.data).job);
    refreshHistory();
  });
  source.addEventListener('failed', (m) => { end(); $('progress').hidden = true; say(JSON.parse(m.data).error, true); refreshHistory(); });
  source.addEventListener('cancelled', () => { end(); $('progress').hidden = true; say('Cancelled.'); refreshHistory(); });
  source.onerror = () => { if (source.readyState === EventSource.CLOSED) { end(); say('Lost the connection to the server: reload the page to see the job in the history.', true); } };
}

$('generate-btn').addEventListener('click', async () => {
  if (!file) return;
  const form = jobForm();
  form.append('image', file);
  say('');
  const r = await fetch('/api/jobs', { method: 'POST', body: form });
  if (!r.ok) {
    const wait = r.headers.get('Retry-After');
    say((await errorText(r)) + (wait && r.status !== 429 ? ` (retry in ${wait} s)` : ''), true);
    return;
  }
  const job = await r.json();
  showProgress('Submitted...', 0);
  follow(job.id);
  refreshHistory();
});

$('cancel-btn').addEventListener('click', async () => {
  if (!current) return;
  const r = await fetch(`/api/jobs/${current.id}/cancel`, { method: 'POST' });
  if (!r.ok) say(await errorText(r), true);
  else showProgress('Cancelling at the next step...');
});

function showDimensions(d) {
  $('dimensions').textContent = d ? `${mm(d.x)} × ${mm(d.y)} × ${mm(d.z)} mm (W × D × H)` : '';
}

function filesOf(job, candidate) {
  return job.files.filter((f) => f.seed === candidate.seed);
}

function fileLabel(f) {
  const name = f.format === 'report' ? 'Report' : f.format.toUpperCase();
  return f.kind === 'raw' ? `${name} (raw)` : name;
}

// The report's key numbers: size, volume, material, printer fit, warnings.
function showReport(c) {
  const el = $('report');
  el.innerHTML = '';
  el.hidden = !(c.print || c.print_error);
  const row = (label, value, cls) => {
    const dt = document.createElement('dt');
    dt.textContent = label;
    const dd = document.createElement('dd');
    dd.textContent = value;
    if (cls) dd.className = cls;
    el.querySelector('dl').append(dt, dd);
  };
  el.append(document.createElement('dl'));
  if (c.print_error) { row('Print files', `not made: ${c.print_error}`, 'bad'); return; }
  const p = c.print;
  row('Size', size3(p.size_mm));
  row('Volume', `${p.volume_cm3.toFixed(1)} cm³`);
  for (const m of p.materials) {
    row(m.material, `${m.grams.toFixed(0)} g${m.filament_m ? `, ${m.filament_m.toFixed(1)} m of filament` : ''}`);
  }
  if (p.printer) row('Printer', `${p.printer}: ${p.fits_printer ? 'fits' : 'does NOT fit'}`, p.fits_printer ? 'good' : 'bad');
  row('Solid', p.solid ? 'closed and manifold: ready to slice' : 'not closed: the slicer may guess', p.solid ? 'good' : 'bad');
  row('Stands', p.stable ? 'stable on the bed' : 'may tip over', p.stable ? 'good' : 'bad');
  row('Faces', p.faces.toLocaleString());
  if (p.warnings.length) {
    const ul = document.createElement('ul');
    ul.className = 'warnings';
    for (const w of p.warnings) { const li = document.createElement('li'); li.textContent = w; ul.append(li); }
    el.append(ul);
  }
}

function which() { return $('show-raw').checked ? 'raw' : 'print'; }

// Shows one candidate: its downloads, its report, and in the viewer the final print mesh (or,
// toggled, the raw mesh scaled to the print's size).
async function showCandidate(job, candidate) {
  shown = { job, candidate };
  const files = filesOf(job, candidate);
  $('downloads').innerHTML = '';
  for (const f of files) {
    const a = document.createElement('a');
    a.href = f.url;
    a.download = f.name;
    a.textContent = fileLabel(f);
    if (f.kind === 'raw') a.className = 'raw';
    $('downloads').append(a);
  }
  showReport(candidate);
  const printGlb = files.find((f) => f.kind === 'print' && f.format === 'glb');
  const rawGlb = files.find((f) => f.kind === 'raw' && f.format === 'glb');
  $('show-print').disabled = !printGlb;
  $('show-raw').disabled = !rawGlb;
  if (!printGlb) $('show-raw').checked = true;
  const f = which() === 'print' ? printGlb : rawGlb;
  $('preview-size-label').hidden = !!printGlb;
  if (!f) { say('This job wrote no GLB file, so it cannot be shown; download the files instead.'); return; }
  if (!viewer) return;
  $('viewer-empty').hidden = true;
  try {
    const sizeMm = candidate.print ? Math.max(...candidate.print.size_mm) : null;
    showDimensions(await viewer.load(f.url, f.kind === 'print' ? { metres: true } : { sizeMm }));
    $('viewer').dataset.loaded = f.name;
    $('viewer').dataset.shown = f.kind;
  } catch (err) {
    say(`The model could not be displayed: ${err.message}`, true);
  }
}

for (const id of ['show-print', 'show-raw']) $(id).addEventListener('change', () => { if (shown) showCandidate(shown.job, shown.candidate); });

// Several seeds: one card each with its numbers; the chosen one is shown above.
function show(job) {
  const cands = job.result ? job.result.candidates : [];
  $('candidates').innerHTML = '';
  if (cands.length > 1) {
    const pick = (card, c) => {
      for (const o of $('candidates').children) o.classList.remove('active');
      card.classList.add('active');
      showCandidate(job, c);
    };
    cands.forEach((c, i) => {
      const card = document.createElement('button');
      card.type = 'button';
      card.className = 'card';
      const title = document.createElement('b');
      title.textContent = `Seed ${c.seed}`;
      const body = document.createElement('span');
      body.textContent = c.print
        ? `${size3(c.print.size_mm)} · ${c.print.volume_cm3.toFixed(1)} cm³${c.print.warnings.length ? ` · ${c.print.warnings.length} warning(s)` : ''}`
        : `${c.faces.toLocaleString()} faces${c.print_error ? ' · no print files' : ''}`;
      card.append(title, body);
      card.addEventListener('click', () => pick(card, c));
      if (i === 0) card.classList.add('active');
      $('candidates').append(card);
    });
  }
  if (cands.length) showCandidate(job, cands[0]);
}

function historySummary(job) {
  const c = job.result && job.result.candidates[0];
  if (!c) return job.error || '';
  const n = job.result.candidates.length > 1 ? `${job.result.candidates.length} candidates · ` : '';
  if (c.print) {
    const pla = c.print.materials.find((m) => m.material === 'PLA');
    return `${n}${size3(c.print.size_mm)} · ${c.print.volume_cm3.toFixed(1)} cm³${pla ? ` · ${pla.grams.toFixed(0)} g PLA` : ''}`;
  }
  return `${n}${c.faces.toLocaleString()} faces${c.closed ? ', closed' : ''}`;
}

async function refreshHistory() {
  const r = await fetch('/api/jobs');
  if (!r.ok) return;
  const jobs = await r.json();
  $('history').innerHTML = '';
  for (const job of jobs) {
    const li = document.createElement('li');
    const secs = job.finished_ms && job.started_ms ? `${((job.finished_ms - job.started_ms) / 1000).toFixed(0)} s` : '';
    li.innerHTML = '<img alt=""><div class="meta"><b></b><span class="status"></span><br><span class="what"></span><br><button type="button" class="secondary">Delete</button></div>';
    li.querySelector('img').src = job.input_url;
    li.querySelector('b').textContent = job.input_name;
    li.querySelector('.status').textContent = `${job.status} ${secs} · ${job.params.steps} steps, seed ${job.params.seed}`;
    li.querySelector('.what').textContent = historySummary(job);
    if (job.device) li.title = `Ran on ${job.device}`;
    li.addEventListener('click', () => {
      if (job.status === 'done') show(job);
      else if (job.status === 'queued' || job.status === 'running') follow(job.id);
      else say(job.error || `This job was ${job.status}.`, job.status === 'failed');
    });
    li.querySelector('button').addEventListener('click', async (e) => {
      e.stopPropagation();
      const d = await fetch(`/api/jobs/${job.id}`, { method: 'DELETE' });
      if (!d.ok) say(await errorText(d), true);
      refreshHistory();
    });
    $('history').append(li);
  }
}

$('wireframe').addEventListener('change', (e) => viewer?.setWireframe(e.target.checked));
$('overhangs').addEventListener('change', (e) => viewer?.setOverhangs(e.target.checked));
$('preview-size').addEventListener('change', (e) => { if (viewer) showDimensions(viewer.setSize(Number(e.target.value) || 100)); });

// Weights missing: say so, and fetch them through the server (`triposg download`'s code).
function showWeights(w) {
  const d = w.download;
  $('weights-banner').hidden = w.ready && d.status !== 'failed';
  if (w.ready) return;
  $('weights-text').textContent = `The model weights are not on the server yet (${w.folder}): ${w.problems[0] || 'missing'}.`;
  const running = d.status === 'running';
  $('weights-btn').disabled = running;
  $('weights-bar').hidden = !running;
  if (running) {
    const gb = (b) => `${(b / 1e9).toFixed(2)} GB`;
    const done = d.repo_done + d.file_done;
    $('weights-fill').style.width = `${d.repo_bytes ? (100 * done) / d.repo_bytes : 0}%`;
    $('weights-progress').textContent = d.repo ? `${d.repo}: ${gb(done)} of ${gb(d.repo_bytes)}${d.file ? ` (${d.file})` : ''}` : 'Asking the Hugging Face hub...';
  } else if (d.status === 'failed') {
    $('weights-progress').textContent = `The download failed: ${d.error}`;
  }
}

async function pollWeights() {
  const r = await fetch('/api/weights');
  if (!r.ok) return;
  const w = await r.json();
  showWeights(w);
  if (w.download.status === 'running') setTimeout(pollWeights, 1000);
  else if (w.ready) checkServer();
}

$('weights-btn').addEventListener('click', async () => {
  const skip = $('weights-rmbg').checked ? '' : '?skip_rmbg=true';
  const r = await fetch(`/api/weights/download${skip}`, { method: 'POST' });
  if (!r.ok && r.status !== 409) { $('weights-progress').textContent = await errorText(r); return; }
  pollWeights();
});

async function checkServer() {
  const r = await fetch('/api/info');
  if (!r.ok) { $('banner').hidden = false; $('banner').textContent = await errorText(r); return; }
  const info = await r.json();
  const printers = $('params').printer;
  if (printers.options.length === 1) {
    for (const p of info.printers) printers.add(new Option(`${p.name} (${p.build_volume_mm.join(' × ')} mm)`, p.id));
  }
  // Missing weights get their own notice with the download; anything else is said here.
  $('banner').hidden = info.ready || !info.weights_ready;
  $('banner').textContent = `The server is not ready: ${info.problems.join('; ')}`;
  if (!info.weights_ready) pollWeights();
  else $('weights-banner').hidden = true;
}

checkServer();
refreshHistory();
