// The irconstyle web app's page: uploads photos, shows what the detector saw, queues restores, polls their
// progress, compares before and after and offers the full-resolution result. Plain JavaScript, no downloads.
"use strict";

const POLL_MS = 300;
const state = { config: null, photos: [], selected: null, nextKey: 1 };
const $ = (id) => document.getElementById(id);

function megabytes(bytes) { return Number((bytes / 2 ** 20).toFixed(1)) + " MB"; }

function showMessage(text) {
  $("message").textContent = text || "";
  $("message").hidden = !text;
}

async function api(method, url, body) {
  const options = { method };
  if (body !== undefined) {
    options.headers = { "Content-Type": "application/json" };
    options.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, options);
  } catch (error) {
    throw new Error("the server does not answer (is `irconstyle serve` still running?)");
  }
  if (response.status === 204) return null;
  const answer = await response.json().catch(() => ({ error: `the server answered ${response.status}` }));
  if (!response.ok) throw new Error(answer.error || `the server answered ${response.status}`);
  return answer;
}

// Upload with XMLHttpRequest rather than fetch: it reports upload progress, which matters for large photos.
function sendFile(file, onProgress) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", "/api/uploads?name=" + encodeURIComponent(file.name));
    request.upload.onprogress = (event) => { if (event.lengthComputable) onProgress(event.loaded / event.total); };
    request.onload = () => {
      let answer = null;
      try { answer = JSON.parse(request.responseText); } catch (error) { /* not JSON: reported below */ }
      if (request.status >= 200 && request.status < 300 && answer) resolve(answer);
      else reject(new Error((answer && answer.error) || `${file.name}: the server answered ${request.status}`));
    };
    request.onerror = () => reject(new Error(`${file.name}: the upload failed (the server closed the connection)`));
    request.send(file);
  });
}

function taskLabel(name) {
  const task = state.config.tasks.find((t) => t.name === name);
  return task ? task.label : name;
}

function modelsFor(task) {
  return state.config.models.filter((m) => m.task === task);
}

// The default model of a task: an installed one (larger, more accurate) where there is one, else the bundled one.
function defaultModel(task) {
  const models = modelsFor(task);
  const installed = models.find((m) => m.kind === "installed");
  return (installed || models[0] || state.config.models[0]).name;
}

function describeDetection(upload) {
  const detection = upload.detection;
  if (!detection) return upload.detection_note || "Detection is unavailable: choose the degradation below.";
  const sure = Math.round(detection.confidence * 100);
  if (detection.task === "none") return `Looks clean (${sure} % sure): restoring it is optional.`;
  let level = "";
  if (detection.level !== null && detection.level !== undefined) {
    level = detection.task === "denoise" ? ` (σ ≈ ${detection.level.toFixed(1)})` : ` (level ${detection.level.toFixed(2)})`;
  }
  let text = `Detected: ${detection.label}${level}, ${sure} % sure.`;
  if (detection.confidence < state.config.min_confidence) {
    text += " Not sure: look at the photo and choose the degradation yourself.";
  }
  if (!modelsFor(detection.task).length) text += " No model for it is installed; `irconstyle install` adds one.";
  return text;
}

function addFiles(files) {
  showMessage("");
  for (const file of files) {
    const photo = { key: state.nextKey++, name: file.name, upload: null, error: null, job: null, sent: 0 };
    state.photos.push(photo);
    if (state.selected === null) state.selected = photo.key;
    if (file.size > state.config.max_upload_bytes) {
      photo.error = `${file.name}: ${megabytes(file.size)} is over this server's upload limit of ` +
        `${megabytes(state.config.max_upload_bytes)} (irconstyle serve --max-upload-mb N raises it)`;
      continue;
    }
    sendFile(file, (fraction) => { photo.sent = fraction; render(); })
      .then((upload) => {
        photo.upload = upload;
        const detected = upload.detection && upload.detection.task;
        photo.task = modelsFor(detected).length ? detected : state.config.tasks[0].name;
        photo.model = defaultModel(photo.task);
      })
      .catch((error) => { photo.error = error.message; })
      .finally(render);
  }
  render();
}

async function startRestore(photo) {
  if (!photo.upload || (photo.job && !finished(photo.job))) return;
  try {
    photo.job = await api("POST", "/api/jobs", { upload: photo.upload.id, model: photo.model });
    photo.error = null;
    poll(photo);
  } catch (error) {
    photo.error = error.message;
  }
  render();
}

function finished(job) { return ["done", "failed", "cancelled"].includes(job.state); }

async function poll(photo) {
  const id = photo.job.id;
  while (photo.job && photo.job.id === id && !finished(photo.job)) {
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    try {
      photo.job = await api("GET", "/api/jobs/" + id);
    } catch (error) {
      photo.job = { ...photo.job, state: "failed", error: error.message };
    }
    render();
  }
}

function jobText(job) {
  if (job.state === "queued") {
    return job.ahead ? `waiting: ${job.ahead} restore${job.ahead > 1 ? "s" : ""} ahead in the queue` : "waiting: next";
  }
  if (job.state === "running") {
    if (job.phase === "restoring" && job.total > 1) {
      return `restoring: tile ${job.done} of ${job.total} (${Math.round((100 * job.done) / job.total)} %)`;
    }
    return job.phase + "…";
  }
  if (job.state === "done") return `restored in ${job.seconds.toFixed(1)} s`;
  if (job.state === "failed") return "failed: " + job.error;
  return "cancelled";
}

function photoText(photo) {
  if (photo.error) return photo.error;
  if (!photo.upload) return photo.sent < 1 ? `uploading ${Math.round(photo.sent * 100)} %` : "checking…";
  const size = `${photo.upload.width}×${photo.upload.height}, ${photo.upload.bit_depth}-bit`;
  return photo.job ? `${size} · ${jobText(photo.job)}` : size;
}

function renderList() {
  const list = $("photos");
  list.replaceChildren();
  for (const photo of state.photos) {
    const item = document.createElement("li");
    item.dataset.key = photo.key;
    item.className = (photo.key === state.selected ? "selected " : "") + (photo.error ? "failed" : "");
    const thumb = document.createElement("img");
    thumb.alt = "";
    if (photo.upload) thumb.src = photo.upload.preview;
    const text = document.createElement("div");
    const name = document.createElement("div");
    name.className = "name";
    name.textContent = photo.name;
    const line = document.createElement("div");
    line.className = "state";
    line.textContent = photoText(photo);
    text.append(name, line);
    const remove = document.createElement("button");
    remove.className = "remove";
    remove.type = "button";
    remove.title = "remove this photo";
    remove.textContent = "×";
    remove.addEventListener("click", (event) => { event.stopPropagation(); removePhoto(photo); });
    item.append(thumb, text, remove);
    item.addEventListener("click", () => { state.selected = photo.key; render(); });
    list.append(item);
  }
}

async function removePhoto(photo) {
  if (photo.upload) {
    try { await api("DELETE", "/api/uploads/" + photo.upload.id); } catch (error) { showMessage(error.message); return; }
  }
  state.photos = state.photos.filter((p) => p !== photo);
  if (state.selected === photo.key) state.selected = state.photos.length ? state.photos[0].key : null;
  render();
}

function fillSelect(select, options, value) {
  const signature = JSON.stringify(options);
  if (select.dataset.signature !== signature) {
    select.replaceChildren(...options.map(([name, label]) => new Option(label, name)));
    select.dataset.signature = signature;
  }
  select.value = value;
}

function renderRestoreAll() {
  $("restore-all").hidden = state.photos.filter((p) => p.upload && !p.job).length < 2;
}

// The comparison is as wide as the page allows, but no taller than most of the window.
function fitComparison() {
  const image = $("before");
  if (!image.naturalWidth) return;
  const width = `min(100%, 640px, calc(55vh * ${image.naturalWidth / image.naturalHeight}))`;
  $("compare").style.width = $("slider-label").style.width = width;
}

function renderWorkbench() {
  const photo = state.photos.find((p) => p.key === state.selected);
  const bench = $("workbench");
  bench.hidden = !photo;
  if (!photo) return;
  $("photo-name").textContent = photo.name;
  const ready = Boolean(photo.upload);
  const job = photo.job;
  const busy = Boolean(job && !finished(job));
  $("detected").textContent = ready ? describeDetection(photo.upload) : photoText(photo);
  fillSelect($("task"), state.config.tasks.map((t) => [t.name, t.label]), photo.task || state.config.tasks[0].name);
  const matching = modelsFor(photo.task).map((m) => [m.name, m.label]);
  const others = state.config.models.filter((m) => m.task !== photo.task).map((m) => [m.name, "other: " + m.label]);
  fillSelect($("model"), matching.concat(others), photo.model || "");
  $("task").disabled = $("model").disabled = !ready || busy;
  $("restore").disabled = !ready || busy;

  $("cancel").hidden = !busy;
  $("bar").hidden = !busy;
  if (busy) {
    $("bar").max = Math.max(job.total, 1);
    if (job.state === "running" && job.total) $("bar").value = job.done; else $("bar").removeAttribute("value");
  }
  $("status").textContent = job ? jobText(job) : (photo.error && ready ? photo.error : "");
  const result = job && job.state === "done" ? job.result : null;
  const download = $("download");
  download.hidden = !result;
  if (result) {
    download.href = result.download;
    download.download = result.filename;
    download.textContent = `Download ${result.filename} (${result.width}×${result.height}, ${result.bit_depth}-bit PNG)`;
  }
  const before = ready ? photo.upload.preview : "";
  if ($("before").getAttribute("src") !== before) $("before").src = before;
  $("compare").hidden = !ready;
  const after = result ? result.preview : "";
  if ($("after").getAttribute("src") !== after) $("after").src = after;
  for (const id of ["after-layer", "divider", "after-tag", "slider-label"]) $(id).hidden = !result;
  placeSlider();
}

function placeSlider() {
  const percent = Number($("slider").value);
  $("after-layer").style.clipPath = `inset(0 0 0 ${percent}%)`;
  $("divider").style.left = `calc(${percent}% - 1px)`;
}

function render() {
  renderList();
  renderRestoreAll();
  renderWorkbench();
}

function selectedPhoto() { return state.photos.find((p) => p.key === state.selected); }

async function start() {
  try {
    state.config = await api("GET", "/api/config");
  } catch (error) {
    showMessage(error.message);
    return;
  }
  $("limits").textContent = `PNG, JPEG, TIFF, WebP or BMP, 8 or 16 bits; up to ${megabytes(state.config.max_upload_bytes)} ` +
    `and ${state.config.max_megapixels} megapixels per photo. Large photos are restored in tiles, one photo at a time.`;
  $("files").addEventListener("change", (event) => { addFiles(event.target.files); event.target.value = ""; });
  const drop = $("drop");
  window.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  window.addEventListener("dragleave", () => drop.classList.remove("over"));
  window.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    addFiles(event.dataTransfer.files);
  });
  $("task").addEventListener("change", (event) => {
    const photo = selectedPhoto();
    photo.task = event.target.value;
    photo.model = defaultModel(photo.task);
    render();
  });
  $("model").addEventListener("change", (event) => { selectedPhoto().model = event.target.value; render(); });
  $("restore").addEventListener("click", () => startRestore(selectedPhoto()));
  $("restore-all").addEventListener("click", async () => {
    for (const photo of state.photos) if (photo.upload && !photo.job) await startRestore(photo);
  });
  $("cancel").addEventListener("click", async () => {
    const photo = selectedPhoto();
    try { photo.job = await api("DELETE", "/api/jobs/" + photo.job.id); } catch (error) { showMessage(error.message); }
    render();
  });
  $("slider").addEventListener("input", placeSlider);
  $("before").addEventListener("load", fitComparison);
  render();
}

start();
