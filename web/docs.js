// The API page (docs.html): lists the OpenAPI document's operations and job parameters.
const spec = await (await fetch('/api/openapi.json')).json();
document.getElementById('about').textContent = spec.info.description;
const ops = document.getElementById('ops');
for (const [path, item] of Object.entries(spec.paths)) {
  for (const [method, op] of Object.entries(item)) {
    const div = document.createElement('div');
    div.className = 'op';
    const codes = Object.entries(op.responses || {}).map(([c, r]) => `${c}${r.description ? ': ' + r.description : ''}`);
    div.innerHTML = '<span class="method"></span><code class="path"></code><p class="desc"></p><p class="req"></p><ul class="codes"></ul>';
    div.querySelector('.method').textContent = method;
    div.querySelector('.path').textContent = path;
    div.querySelector('.desc').textContent = op.description || op.summary || '';
    div.querySelector('.req').textContent = op.requestBody ? `Body: ${op.requestBody.description || Object.keys(op.requestBody.content).join(', ')}` : '';
    for (const c of codes) { const li = document.createElement('li'); li.textContent = c; div.querySelector('.codes').append(li); }
    ops.append(div);
  }
}
const params = spec.components.schemas.JobParams;
const pre = document.createElement('div');
pre.className = 'op';
pre.innerHTML = '<b>Job parameters</b> (form fields of POST /api/jobs; all optional)<ul></ul>';
for (const [name, p] of Object.entries(params.properties)) {
  const li = document.createElement('li');
  li.textContent = `${name}: ${p.description || ''}`;
  pre.querySelector('ul').append(li);
}
ops.prepend(pre);
