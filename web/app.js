// The page: pick a photo, preview the cut-out, submit a job, follow its progress over SSE,
// show the result in the viewer, and list this browser's past jobs.
import { Viewer } from '/viewer.js';

const $ = (id) => document.getElementById(id);
const viewer = new Viewer($('viewer'));
let file = null;
let current = null; // { id, source }
const PRESETS = {
  fast: { steps: 25, octree_depth: 8, faces: 100000 },
  standard: { steps: 50, octree_depth: 9, faces: -1 },
  high: { steps: 75, octree_depth: 10, faces: -1 },
};
const STAGES = { prepare: 'Preparing the photo', encode: 'Reading the photo', denoise: 'Shaping', decode: 'Computing the surface', surface: 'Building the mesh' };
// Rough share of a job's time per stage, to move one progress bar through all of them.
const WEIGHT = { prepare: [0, 3], encode: [3, 5], denoise: [5, 70], decode: [70, 95], surface: [95, 100] };

function say(text, error = false) {
  $('message').textContent = text;
  $('message').classList.toggle('error', error);
}

async function errorText(r) {
  try { return (await r.json()).error || r.statusText; } catch { return `${r.status} ${r.statusText}`; }
}

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
  form.append('margin', new FormData($('params')).get('margin'));
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
  const form = new FormData($('params'));
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
  $('dimensions').textContent = d ? `${d.x.toFixed(1)} x ${d.y.toFixed(1)} x ${d.z.toFixed(1)} mm (W x D x H)` : '';
}

async function showCandidate(job, candidate) {
  const glb = candidate.files.find((f) => f.endsWith('.glb'));
  $('downloads').innerHTML = '';
  for (const name of [...candidate.files, 'report.json']) {
    const a = document.createElement('a');
    a.href = `/api/jobs/${job.id}/files/${name}`;
    a.download = name;
    a.textContent = name.endsWith('.json') ? 'Report' : name.split('.').pop().toUpperCase();
    $('downloads').append(a);
  }
  if (!glb) { say('This job wrote no GLB file, so it cannot be shown; download the files instead.'); return; }
  $('viewer-empty').hidden = true;
  try {
    showDimensions(await viewer.load(`/api/jobs/${job.id}/files/${glb}`));
    $('viewer').dataset.loaded = `${job.id}/${glb}`;
  } catch (err) {
    say(`The model could not be displayed: ${err.message}`, true);
  }
}

function show(job) {
  const cands = job.result ? job.result.candidates : [];
  $('candidates').innerHTML = '';
  if (cands.length > 1) {
    cands.forEach((c, i) => {
      const b = document.createElement('button');
      b.className = 'secondary';
      b.textContent = `Seed ${c.seed}: ${c.faces.toLocaleString()} faces`;
      b.addEventListener('click', () => {
        for (const o of $('candidates').children) o.classList.remove('active');
        b.classList.add('active');
        showCandidate(job, c);
      });
      if (i === 0) b.classList.add('active');
      $('candidates').append(b);
    });
  }
  if (cands.length) showCandidate(job, cands[0]);
}

async function refreshHistory() {
  const r = await fetch('/api/jobs');
  if (!r.ok) return;
  const jobs = await r.json();
  $('history').innerHTML = '';
  for (const job of jobs) {
    const li = document.createElement('li');
    const c = job.result && job.result.candidates[0];
    const secs = job.finished_ms && job.started_ms ? `${((job.finished_ms - job.started_ms) / 1000).toFixed(0)} s` : '';
    const what = c ? `${c.faces.toLocaleString()} faces${c.closed ? ', closed' : ''}` : (job.error || '');
    li.innerHTML = `<img alt=""><div class="meta"><b></b><span class="status"></span><br><span class="what"></span><br><button type="button" class="secondary">Delete</button></div>`;
    li.querySelector('img').src = job.input_url;
    li.querySelector('b').textContent = job.input_name;
    li.querySelector('.status').textContent = `${job.status} ${secs} · ${job.params.steps} steps, seed ${job.params.seed}`;
    li.querySelector('.what').textContent = what;
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

$('wireframe').addEventListener('change', (e) => viewer.setWireframe(e.target.checked));
$('overhangs').addEventListener('change', (e) => viewer.setOverhangs(e.target.checked));
$('preview-size').addEventListener('change', (e) => showDimensions(viewer.setSize(Number(e.target.value) || 100)));

async function checkServer() {
  const r = await fetch('/api/info');
  if (!r.ok) { $('banner').hidden = false; $('banner').textContent = await errorText(r); return; }
  const info = await r.json();
  if (!info.ready) {
    $('banner').hidden = false;
    $('banner').textContent = `The server is not ready: ${info.problems.join('; ')}`;
  }
}

checkServer();
refreshHistory();
