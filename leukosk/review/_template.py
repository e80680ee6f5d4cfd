"""The static parts of the review page: its style and its script.

The page (see :mod:`leukosk.review`) is plain HTML; this script builds the
cell views from the JSON data the page embeds, and never puts text from the
data into HTML: every name is set with ``textContent`` or an attribute, so
that a file named ``<img src=x onerror=alert(1)>.jpg`` shows as text. Names
key ``Map`` objects, never plain objects (a class named ``__proto__`` is a
class like any other), and elements are found through them, not through
selectors built from names.
"""

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.2em 2em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table.differential { border-collapse: collapse; }
table.differential th, table.differential td { padding: 2px 10px; text-align: right; }
table.differential th:first-child, table.differential td:first-child { text-align: left; }
table.differential tr.changed td { background: #fff3cd; }
.bar { position: relative; width: 240px; height: 14px; background: #eee; }
.bar .fill { position: absolute; top: 0; bottom: 0; left: 0; background: #6c8ebf; }
.bar .ci { position: absolute; top: 6px; height: 2px; background: #222; }
.referred { display: flex; flex-wrap: wrap; gap: 12px; }
.card { border: 1px solid #ccc; border-radius: 6px; padding: 8px; width: 300px;
        background: #fafafa; cursor: pointer; text-align: left; font: inherit; }
.card img { width: 140px; height: 140px; object-fit: contain; background: #000; }
.card .name, .cell .name { font-size: 11px; color: #555; word-break: break-all; }
.group h3 { font-size: 1em; margin: 1em 0 .3em; }
.grid { display: flex; flex-wrap: wrap; gap: 4px; }
.cell { border: 2px solid transparent; padding: 1px; background: none; cursor: pointer;
        width: 104px; font: inherit; text-align: center; }
.cell img { width: 96px; height: 96px; object-fit: contain; background: #000; }
.cell:hover, .card:hover { border-color: #6c8ebf; }
.corrected { border-color: #d9534f !important; }
.confirmed { border-color: #5cb85c !important; }
.note { font-size: 11px; font-weight: bold; }
#picker { position: fixed; right: 1em; top: 1em; background: #fff; border: 1px solid #888;
          border-radius: 6px; padding: 10px; box-shadow: 0 2px 10px #0004; max-width: 260px; }
#picker button { display: block; width: 100%; margin: 2px 0; text-align: left; }
#picker[hidden] { display: none; }
.toolbar { margin: 1em 0; }
.field-view { position: relative; margin: 6px 0; max-width: 240px; }
.field-view img { width: 100%; height: auto; display: block; }
.field-view .box { position: absolute; border: 2px solid #ffd400; box-shadow: 0 0 0 1px #000; }
.field-view[hidden] { display: none; }
#picker.with-field { max-width: 420px; } #picker.with-field .field-view { max-width: 400px; }
.warning { border: 3px solid #d9534f; background: #fdecea; color: #611a15; padding: 10px 14px;
           border-radius: 6px; font-size: 1.15em; margin-bottom: 1em; }
"""

SCRIPT = r"""
"use strict";
const data = JSON.parse(document.getElementById("leukosk-data").textContent);
const cells = data.cells;
const chosen = new Map();   // index -> class the technologist chose
const grids = new Map();    // class -> the grid of its thumbnails
let current = null;

function labelOf(i) { return chosen.has(i) ? chosen.get(i) : cells[i].predicted; }

function wilson(k, n, z) {
  if (n === 0) { return [NaN, NaN]; }
  const p = k / n, d = 1 + z * z / n;
  const centre = (p + z * z / (2 * n)) / d;
  const half = z * Math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d;
  return [Math.max(0, centre - half), Math.min(1, centre + half)];
}

function fmt(x) { return (100 * x).toFixed(1); }

function differential() {
  const n = cells.length, counts = new Map(data.classes.map(c => [c, 0]));
  cells.forEach((cell, i) => { counts.set(labelOf(i), counts.get(labelOf(i)) + 1); });
  return data.classes.map(c => {
    const k = counts.get(c), [low, high] = wilson(k, n, data.z);
    return {cls: c, count: k, share: n ? k / n : 0, low: low, high: high};
  });
}

function renderDifferential() {
  const rows = differential();
  rows.forEach((row, k) => {
    const tr = document.querySelector(`#differential tr[data-row="${k}"]`);
    const initial = data.table[k];   // as count.json has it, formatted by Python
    const same = row.count === initial.count;
    tr.querySelector(".count").textContent = row.count;
    tr.querySelector(".percent").textContent = same ? initial.percent : fmt(row.share);
    tr.querySelector(".interval").textContent =
      same ? initial.interval : `[${fmt(row.low)}, ${fmt(row.high)}]`;
    tr.querySelector(".fill").style.width = `${100 * row.share}%`;
    const ci = tr.querySelector(".ci");
    ci.style.left = `${100 * row.low}%`;
    ci.style.width = `${100 * (row.high - row.low)}%`;
    tr.classList.toggle("changed", !same);
  });
  document.getElementById("n-corrected").textContent =
    [...chosen].filter(([i, c]) => c !== cells[i].predicted).length;
  document.getElementById("n-confirmed").textContent =
    [...chosen].filter(([i, c]) => c === cells[i].predicted).length;
}

function mark(i) {
  document.querySelectorAll(`[data-cell="${i}"]`).forEach(el => {
    const note = el.querySelector(".note");
    const label = labelOf(i);
    el.classList.toggle("corrected", chosen.has(i) && label !== cells[i].predicted);
    el.classList.toggle("confirmed", chosen.has(i) && label === cells[i].predicted);
    note.textContent = !chosen.has(i) ? "" :
      (label === cells[i].predicted ? `\u2713 ${label}` : `\u2192 ${label}`);
    if (el.classList.contains("cell")) {   // move the thumbnail to its class
      grids.get(label).appendChild(el);
    }
  });
}

function choose(cls) {
  if (current === null) { return; }
  if (cls === null) { chosen.delete(current); } else { chosen.set(current, cls); }
  mark(current);
  renderDifferential();
  closePicker();
}

function openPicker(i) {
  current = i;
  const picker = document.getElementById("picker");
  picker.querySelector(".title").textContent = cells[i].name;
  picker.querySelector(".predicted").textContent =
    `model: ${cells[i].predicted} (${fmt(cells[i].confidence)} %)`;
  showField(i);
  picker.hidden = false;
  picker.querySelector("button").focus();
}

function showField(i) {   // the cell boxed in its field (leukosk count --fields)
  const view = document.getElementById("field-view");
  const field = data.fields ? data.fields[i] : null;
  view.hidden = field === null;
  document.getElementById("picker").classList.toggle("with-field", field !== null);
  if (field === null) { return; }
  const img = view.querySelector("img");
  [img.width, img.height] = field.size;   // its room is kept before it loads
  img.src = field.src;
  const [left, top, width, height] = field.box, box = view.querySelector(".box");
  box.style.left = `${left}%`;
  box.style.top = `${top}%`;
  box.style.width = `${width}%`;
  box.style.height = `${height}%`;
}

function closePicker() { document.getElementById("picker").hidden = true; current = null; }

function csvField(text) {   // as leukosk.utils._output.csv_cell: names come encoded
  let value = String(text);
  if (/^[=+\-@\t\r']/.test(value)) { value = "'" + value; }  // no spreadsheet formulas
  return /[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

function correctionsCsv() {
  const withConfirmed = document.getElementById("with-confirmed").checked;
  const lines = ["file,model_class,corrected_class"];
  cells.forEach((cell, i) => {
    const label = labelOf(i);
    const keep = chosen.has(i) ? (label !== cell.predicted || withConfirmed) : withConfirmed;
    if (keep) { lines.push([cell.name, cell.predicted, label].map(csvField).join(",")); }
  });
  return lines.join("\r\n") + "\r\n";
}

function download() {
  const blob = new Blob([correctionsCsv()], {type: "text/csv"});
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = "corrections.csv";
  document.body.appendChild(link);
  link.click();
  link.remove();
}

function image(src, alt) {
  const img = document.createElement("img");
  img.loading = "lazy";
  img.src = src;
  img.alt = alt;
  return img;
}

function text(tag, value, cls) {
  const el = document.createElement(tag);
  el.textContent = value;
  if (cls) { el.className = cls; }
  return el;
}

function referredCard(i) {
  const cell = cells[i];
  const card = document.createElement("button");
  card.type = "button";
  card.className = "card";
  card.dataset.cell = i;
  card.appendChild(image(cell.image, cell.name));
  if (cell.cam) { card.appendChild(image(cell.cam, "Grad-CAM of " + cell.name)); }
  card.appendChild(text("div", cell.name, "name"));
  card.appendChild(text("div", "plausible: " + (cell.set.length ? cell.set.join(", ")
                                                           : "none (unusual image)")));
  card.appendChild(text("div", "top 3: " + cell.top3.map(
    ([c, p]) => `${c} ${fmt(p)} %`).join(", ")));
  card.appendChild(text("div", "", "note"));
  card.addEventListener("click", () => openPicker(i));
  return card;
}

function thumbnail(i) {
  const cell = cells[i];
  const el = document.createElement("button");
  el.type = "button";
  el.className = "cell";
  el.dataset.cell = i;
  el.title = `${cell.name}: ${cell.predicted} ${fmt(cell.confidence)} %`;
  el.appendChild(image(cell.thumb, cell.name));
  el.appendChild(text("div", `${fmt(cell.confidence)} %`, "name"));
  el.appendChild(text("div", "", "note"));
  el.addEventListener("click", () => openPicker(i));
  return el;
}

function build() {
  const referred = document.getElementById("referred-cells");
  data.referred.forEach(i => referred.appendChild(referredCard(i)));
  const groups = document.getElementById("groups");
  const picker = document.getElementById("picker-classes");
  data.classes.forEach(c => {
    const group = document.createElement("section");
    group.className = "group";
    group.appendChild(text("h3", c));
    const grid = document.createElement("div");
    grid.className = "grid";
    grid.dataset.class = c;
    grids.set(c, grid);
    group.appendChild(grid);
    groups.appendChild(group);
    const button = text("button", c);
    button.type = "button";
    button.dataset.class = c;
    button.addEventListener("click", () => choose(c));
    picker.appendChild(button);
  });
  data.order.forEach(i => { grids.get(cells[i].predicted).appendChild(thumbnail(i)); });
  document.getElementById("undo").addEventListener("click", () => choose(null));
  document.getElementById("close").addEventListener("click", closePicker);
  document.getElementById("download").addEventListener("click", download);
  document.addEventListener("keydown", e => { if (e.key === "Escape") { closePicker(); } });
  renderDifferential();
}

build();
"""
