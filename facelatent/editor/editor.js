// The editor page: pick a face, move sliders (debounced renders on the server), save, share, upload.
"use strict";

const $ = (id) => document.getElementById(id);
const DEBOUNCE_MS = 30; // a drag fires many input events; render the state they settle on
const state = { face: "", edits: {}, layers: [0, 0], numWs: 1 };
const render = { loading: false, pending: false, inputAt: null, timer: null };

async function api(path, options) {
  const response = await fetch(path, options);
  const body = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function showStatus(id, text, isError) {
  $(id).textContent = text;
  $(id).classList.toggle("error", Boolean(isError));
}

function fillSelect(select, values, labels) {
  select.replaceChildren(...values.map((v, i) => new Option(labels ? labels[i] : v, v)));
}

function editsText() {
  return Object.entries(state.edits)
    .filter(([, v]) => v !== 0)
    .map(([k, v]) => `${k}:${v.toFixed(2)}`)
    .join(",");
}

function query() {
  const q = new URLSearchParams({ face: state.face });
  const edits = editsText();
  if (edits) q.set("edits", edits);
  if (state.numWs > 1) q.set("layers", `${state.layers[0]}-${state.layers[1]}`);
  return q.toString();
}

function requestRender() {
  if (!state.face) return;
  if (render.loading) { render.pending = true; return; }
  const q = query();
  render.loading = true;
  render.pending = false;
  const img = $("render");
  const inputAt = render.inputAt;
  img.onload = () => {
    render.loading = false;
    img.dataset.shown = q;
    if (inputAt !== null) {
      const ms = performance.now() - inputAt;
      img.dataset.latencyMs = ms.toFixed(1);
      showStatus("status", `rendered ${ms.toFixed(0)} ms after the slider moved`);
    }
    if (render.pending) requestRender();
  };
  img.onerror = async () => {
    render.loading = false;
    const err = await api(`/api/render.png?${q}`).catch((e) => e);
    showStatus("status", `render failed: ${err.message || err}`, true);
  };
  img.src = `/api/render.png?${q}`;
  history.replaceState(null, "", `/?${q}`);
  $("share").href = `/?${q}`;
}

function scheduleRender(inputAt) {
  render.inputAt = inputAt;
  clearTimeout(render.timer);
  render.timer = setTimeout(requestRender, DEBOUNCE_MS);
}

function buildSliders(directions, range) {
  const groups = { fitted: "Fitted (SVM normals)", conditional: "Conditional", pca: "PCA components" };
  const box = $("sliders");
  box.replaceChildren();
  let lastKind = null;
  for (const d of directions) {
    if (d.kind !== lastKind) {
      const head = document.createElement("div");
      head.className = "group";
      head.textContent = groups[d.kind] || d.kind;
      box.append(head);
      lastKind = d.kind;
    }
    const row = document.createElement("div");
    row.className = "slider";
    row.innerHTML = `<span class="name"><b></b><small></small><small class="start"></small></span>` +
      `<input type="range" step="0.1"><output>0.00</output>`;
    row.querySelector("b").textContent = d.name + (d.kind === "conditional" ? " (conditional)" : "");
    row.querySelector("small").textContent = d.label;
    const input = row.querySelector("input");
    Object.assign(input, { min: -range, max: range, value: 0, id: `slider-${d.name}` });
    input.dataset.direction = d.name;
    input.addEventListener("input", () => {
      state.edits[d.name] = Number(input.value);
      row.querySelector("output").textContent = Number(input.value).toFixed(2);
      scheduleRender(performance.now());
    });
    box.append(row);
  }
}

function setSliders(edits) {
  state.edits = {};
  for (const input of document.querySelectorAll("#sliders input")) {
    const v = Number(edits[input.dataset.direction] || 0);
    input.value = v;
    state.edits[input.dataset.direction] = v;
    input.parentElement.querySelector("output").textContent = v.toFixed(2);
  }
}

function syncPicker(face) {
  // the picker shows the face on screen, whether it came from the picker, a shared link or an upload
  const [source, name, row] = face.split("/");
  if (source === "seed") { $("source").value = "seed"; $("seed").value = name; }
  if (source === "latents" || source === "synthetic") {
    $("source").value = source;
    $(source === "latents" ? "latents-file" : "synthetic-run").value = name;
    $(source === "latents" ? "latents-file" : "synthetic-run").dispatchEvent(new Event("change"));
    $(source === "latents" ? "latents-row" : "synthetic-row").value = row;
  }
  showPicker();
}

async function loadFace(face, edits) {
  try {
    const info = await api(`/api/face?face=${encodeURIComponent(face)}`);
    state.face = info.face;
    syncPicker(info.face);
    setSliders(edits || {});
    $("caption").textContent = info.caption;
    $("target-figure").hidden = !info.has_target;
    if (info.has_target) $("target").src = `/api/target.png?face=${encodeURIComponent(info.face)}`;
    for (const [name, dist] of Object.entries(info.distances)) {
      const el = document.querySelector(`#slider-${CSS.escape(name)}`);
      if (el) el.parentElement.querySelector(".start").textContent = `face starts at ${dist.toFixed(2)}`;
    }
    render.inputAt = null;
    requestRender();
  } catch (e) {
    showStatus("status", e.message, true);
  }
}

function pickedFace() {
  const source = $("source").value;
  if (source === "seed") return `seed/${Math.max(0, Math.floor(Number($("seed").value) || 0))}`;
  const which = source === "latents" ? ["latents-file", "latents-row"] : ["synthetic-run", "synthetic-row"];
  return `${source}/${$(which[0]).value}/${$(which[1]).value}`;
}

function showPicker() {
  for (const s of ["latents", "synthetic", "seed"]) $(`pick-${s}`).hidden = $("source").value !== s;
}

function fillRows(select, ids) {
  fillSelect(select, ids.map((_, i) => String(i)), ids.map((id, i) => `${i}: ${id}`));
}

async function upload(file) {
  showStatus("upload-status", `uploading ${file.name} ...`);
  $("upload-progress").hidden = false;
  $("upload-progress").value = 0;
  try {
    const job = await api("/api/upload", { method: "POST", body: file, headers: { "Content-Type": "application/octet-stream" } });
    showStatus("upload-status", `face found; projecting with ${job.steps} Adam steps ...`);
    for (;;) {
      await new Promise((r) => setTimeout(r, 250));
      const s = await api(job.job);
      $("upload-progress").value = s.fraction;
      showStatus("upload-status", `${s.message} (${s.elapsed_s} s)`, s.state === "error");
      if (s.state === "error") return;
      if (s.state === "done") { await loadFace(s.face); return; }
    }
  } catch (e) {
    showStatus("upload-status", e.message, true);
  } finally {
    $("upload-progress").hidden = true;
  }
}

async function save() {
  try {
    const body = { face: state.face, edits: editsText() };
    if (state.numWs > 1) body.layers = `${state.layers[0]}-${state.layers[1]}`;
    const saved = await api("/api/save", { method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" } });
    const box = $("saved");
    box.replaceChildren("saved ");
    for (const path of [saved.latent, saved.png]) {
      const a = document.createElement("a");
      a.href = `/files/${path}`;
      a.textContent = path;
      a.className = "saved-file";
      box.append(a, " ");
    }
  } catch (e) {
    showStatus("saved", `save failed: ${e.message}`, true);
  }
}

function setLayers(numWs, text) {
  state.numWs = numWs;
  const [lo, hi] = (text || `0-${numWs - 1}`).split("-").map(Number);
  state.layers = [lo, hi];
  for (const [id, v] of [["layer-lo", lo], ["layer-hi", hi]]) Object.assign($(id), { max: numWs - 1, value: v, disabled: numWs === 1 });
  $("layers-note").textContent = numWs === 1 ? "W latents: one layer" : `W+: ${numWs} layers; edits move only these`;
}

async function init() {
  const cat = await api("/api/catalog");
  const g = cat.generator;
  $("generator").textContent = `${g.kind} ${g.img_resolution} px, w_dim ${g.w_dim}, ${g.num_ws} ws (${g.checkpoint})`;
  buildSliders(cat.directions, cat.slider_range);
  fillSelect($("latents-file"), Object.keys(cat.latents));
  fillSelect($("synthetic-run"), Object.keys(cat.synthetic));
  const rows = () => {
    fillRows($("latents-row"), cat.latents[$("latents-file").value] || []);
    fillRows($("synthetic-row"), cat.synthetic[$("synthetic-run").value] || []);
  };
  rows();
  $("latents-file").addEventListener("change", rows);
  $("synthetic-run").addEventListener("change", rows);
  $("source").addEventListener("change", showPicker);
  $("load-face").addEventListener("click", () => loadFace(pickedFace()));
  $("reset").addEventListener("click", () => { setSliders({}); scheduleRender(performance.now()); });
  $("save").addEventListener("click", save);
  $("upload").addEventListener("change", () => { if ($("upload").files[0]) upload($("upload").files[0]); });
  for (const id of ["layer-lo", "layer-hi"]) {
    $(id).addEventListener("change", () => {
      state.layers = [Number($("layer-lo").value), Number($("layer-hi").value)];
      scheduleRender(performance.now());
    });
  }
  // a shared link: face, slider values and layers come from the URL
  const params = new URLSearchParams(location.search);
  setLayers(g.num_ws, params.get("layers"));
  const edits = Object.fromEntries((params.get("edits") || "").split(",").filter(Boolean)
    .map((item) => item.split(":")).map(([k, v]) => [k, Number(v)]));
  const first = Object.keys(cat.latents).length ? "latents" : Object.keys(cat.synthetic).length ? "synthetic" : "seed";
  $("source").value = first;
  showPicker();
  await loadFace(params.get("face") || pickedFace(), edits);
  document.body.dataset.ready = "1";
}

init().catch((e) => showStatus("status", e.message, true));
