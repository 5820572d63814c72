// evalkit static site: sortable tables, the sample table and viewer drawn from data/<task>/*.js, box-layer
// toggles. No dependencies; never writes HTML from data (textContent and attributes only).
"use strict";
(function () {
  function sortKey(cell) {
    const raw = cell.getAttribute("data-sort");
    const text = (raw !== null ? raw : cell.textContent).trim();
    const number = text === "" ? NaN : Number(text);
    return { empty: text === "", number: Number.isFinite(number) ? number : null, text: text };
  }

  function sortTable(table, index, header) {
    const body = table.tBodies[0];
    const current = header.getAttribute("aria-sort");
    const first = header.getAttribute("data-first") || "ascending";
    const direction = current === "ascending" ? "descending" : current === "descending" ? "ascending" : first;
    Array.from(table.tHead.rows[0].cells).forEach(function (th) { th.setAttribute("aria-sort", "none"); });
    header.setAttribute("aria-sort", direction);
    const sign = direction === "ascending" ? 1 : -1;
    const rows = Array.from(body.rows);
    rows.sort(function (a, b) {
      const x = sortKey(a.cells[index]);
      const y = sortKey(b.cells[index]);
      if (x.empty !== y.empty) return x.empty ? 1 : -1; // missing values stay at the bottom
      if (x.number !== null && y.number !== null) return sign * (x.number - y.number);
      return sign * x.text.localeCompare(y.text, undefined, { numeric: true });
    });
    rows.forEach(function (row) { body.appendChild(row); });
  }

  // --- per-sample data (data/<task>/*.js, see evalkit/site_data.py): always inserted as text, never as HTML ---
  const SVG = "http://www.w3.org/2000/svg";

  function num(value) {
    return value === null || value === undefined || !Number.isFinite(value) ? "\u2014" : value.toFixed(3);
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function boxText(box) {
    return "[" + box.map(function (v) { return String(Number(v.toFixed(3))); }).join(", ") + "]";
  }

  function plural(n) { return n + " box" + (n === 1 ? "" : "es"); }

  // A task's index keeps its bulk (sample ids, primary scores) packed as a part is (site_data.index_script):
  // inflated once per page, then the index reads as one object.
  const indexes = {};
  function loadIndex(slug) {
    const index = (window.EVALKIT_INDEX || {})[slug];
    if (!index) return null;
    if (!indexes[slug]) {
      indexes[slug] = inflate(index.packed).then(function (bulk) {
        return Object.assign({}, index, bulk);
      });
    }
    return indexes[slug];
  }

  function fillSampleTables() {
    document.querySelectorAll("table[data-samples]").forEach(function (table) {
      if (typeof DecompressionStream === "undefined") return; // the viewer page says so
      const loading = loadIndex(table.getAttribute("data-samples"));
      if (loading) loading.then(function (index) { fillSampleTable(table, index); });
    });
  }

  function fillSampleTable(table, index) {
    const rows = document.createDocumentFragment();
    index.ids.forEach(function (id, i) {
      const row = document.createElement("tr");
      const cell = element("td");
      cell.setAttribute("data-sort", id);
      const link = element("a", "", id);
      link.href = "../samples/" + index.slug + ".html#" + encodeURIComponent(id);
      cell.appendChild(link);
      row.appendChild(cell);
      index.primary_scores[i].forEach(function (value) {
        const score = element("td", "num", num(value));
        score.setAttribute("data-sort", value === null ? "" : String(value));
        row.appendChild(score);
      });
      rows.appendChild(row);
    });
    table.tBodies[0].appendChild(rows);
  }

  function rect(box, width, height, className, stroke, title) {
    const node = document.createElementNS(SVG, "rect");
    node.setAttribute("class", className);
    node.setAttribute("x", box[0] * width);
    node.setAttribute("y", box[1] * height);
    node.setAttribute("width", (box[2] - box[0]) * width);
    node.setAttribute("height", (box[3] - box[1]) * height);
    node.setAttribute("stroke", stroke);
    const label = document.createElementNS(SVG, "title");
    label.textContent = title;
    node.appendChild(label);
    return node;
  }

  function layer(name) {
    const group = document.createElementNS(SVG, "g");
    group.setAttribute("data-layer", name);
    return group;
  }

  function legendItem(toggle, swatch, text) {
    const item = element("li");
    const label = element("label");
    const box = element("input");
    box.type = "checkbox";
    box.checked = true;
    box.setAttribute("data-toggle", toggle);
    label.appendChild(box);
    label.appendChild(document.createTextNode(" "));
    label.appendChild(swatch);
    label.appendChild(document.createTextNode(" " + text));
    item.appendChild(label);
    return item;
  }

  function renderSample(view, index, sample, position) {
    const field = function (name) { return view.querySelector('[data-field="' + name + '"]'); };
    const root = view.getAttribute("data-root");
    const referenceColour = view.getAttribute("data-reference-colour");
    const models = index.models;
    field("missing").classList.add("hidden");
    field("unsupported").classList.add("hidden");
    field("id").textContent = sample.id;
    document.title = sample.id + " \u00b7 " + index.task + " \u00b7 evalkit";
    field("position").textContent = "(" + (position + 1) + " of " + index.ids.length + ")";
    [["prev", position - 1], ["next", position + 1]].forEach(function (pair) {
      const link = view.querySelector('[data-nav="' + pair[0] + '"]');
      const there = index.ids[pair[1]];
      link.classList.toggle("hidden", there === undefined);
      if (there !== undefined) link.href = "#" + encodeURIComponent(there);
    });
    const vars = field("vars");
    vars.replaceChildren();
    Object.keys(sample.vars || {}).forEach(function (key, i) {
      if (i) vars.appendChild(document.createTextNode(" \u00b7 "));
      vars.appendChild(document.createTextNode(key + ": "));
      vars.appendChild(element("strong", "", sample.vars[key]));
    });
    const boxes = sample.boxes || [];
    const labels = sample.labels || [];
    const figure = field("figure");
    figure.replaceChildren();
    if (sample.image) {
      const w = sample.image.width, h = sample.image.height;
      const svg = document.createElementNS(SVG, "svg");
      svg.setAttribute("class", "overlay");
      svg.setAttribute("viewBox", "0 0 " + w + " " + h);
      svg.setAttribute("role", "img");
      svg.setAttribute("aria-label", "image with reference and predicted boxes");
      const picture = document.createElementNS(SVG, "image");
      picture.setAttribute("href", root + sample.image.src);
      ["x", "y"].forEach(function (a) { picture.setAttribute(a, "0"); });
      picture.setAttribute("width", w);
      picture.setAttribute("height", h);
      svg.appendChild(picture);
      const reference = layer("ref");
      boxes.forEach(function (box, i) {
        reference.appendChild(rect(box, w, h, "box ref", referenceColour, "reference: " + (labels[i] || "")));
      });
      svg.appendChild(reference);
      sample.out.forEach(function (o) {
        const group = layer("m" + o.m);
        (o.b || []).forEach(function (box) {
          group.appendChild(rect(box, w, h, "box pred", models[o.m].colour, models[o.m].name));
        });
        svg.appendChild(group);
      });
      figure.appendChild(svg);
    } else {
      figure.appendChild(element("p", "note", "No image available for this sample."));
    }
    const legend = field("legend");
    legend.replaceChildren();
    const refSwatch = element("span", "swatch");
    refSwatch.setAttribute("data-colour", "ref");
    legend.appendChild(legendItem("ref", refSwatch, "reference (" + plural(boxes.length) + ")"));
    sample.out.forEach(function (o) {
      const swatch = element("span", "swatch swatch-" + (o.m % 8));
      legend.appendChild(legendItem("m" + o.m, swatch, models[o.m].name + " (" + plural((o.b || []).length) + ")"));
    });
    const reference = field("reference");
    reference.replaceChildren();
    if (sample.text) reference.appendChild(element("pre", "report reference", sample.text));
    if (boxes.length) {
      const parts = boxes.map(function (box, i) { return (labels[i] || "") + " " + boxText(box); });
      reference.appendChild(element("p", "boxes", "boxes: " + parts.join("; ")));
    }
    const outputs = field("outputs");
    outputs.replaceChildren();
    sample.out.forEach(function (o) {
      const model = models[o.m];
      const article = element("article", "output");
      const heading = element("h3");
      heading.appendChild(element("span", "swatch swatch-" + (o.m % 8)));
      heading.appendChild(document.createTextNode(" "));
      const link = element("a", "", model.name);
      link.href = root + "models/" + model.slug + ".html";
      heading.appendChild(link);
      article.appendChild(heading);
      const scores = element("p", "scores");
      index.columns.forEach(function (name, i) {
        if (i) scores.appendChild(document.createTextNode(" \u00b7 "));
        scores.appendChild(document.createTextNode(name + " "));
        scores.appendChild(element("strong", "", num(o.s ? o.s[i] : null)));
      });
      article.appendChild(scores);
      if (o.e) article.appendChild(element("p", "error", "generation failed: " + o.e));
      if (o.pe) article.appendChild(element("p", "error", "parse: " + o.pe));
      article.appendChild(element("pre", "report generated", o.a));
      if (o.b && o.b.length) article.appendChild(element("p", "boxes", "parsed boxes: " + o.b.map(boxText).join("; ")));
      if (o.r !== undefined) {
        const details = element("details");
        details.appendChild(element("summary", "", "raw output"));
        details.appendChild(element("pre", "report raw", o.r));
        article.appendChild(details);
      }
      outputs.appendChild(article);
    });
  }

  // A part's samples are gzip-compressed JSON in base64 (evalkit/site_data.py part_script); the browser's own
  // DecompressionStream inflates them: no fetch, so this works from file:// under the site's CSP.
  function inflate(packed) {
    const bytes = Uint8Array.from(atob(packed), function (c) { return c.charCodeAt(0); });
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return new Response(stream).text().then(JSON.parse);
  }

  // An output marked "bt" has exactly the boxes its answer states as "[x1, y1, x2, y2]" (site_data.BOX_TEXT).
  const NUMBER = "(-?[0-9]+(?:\\.[0-9]{1,4})?)";
  const BOX_TEXT = new RegExp("\\[" + [NUMBER, NUMBER, NUMBER, NUMBER].join(", ") + "\\]", "g");

  function boxesInText(text) {
    return Array.from(text.matchAll(BOX_TEXT), function (found) { return found.slice(1, 5).map(Number); });
  }

  function expandPart(samples) {
    samples.forEach(function (sample) {
      sample.out.forEach(function (o) {
        if (o.bt) o.b = boxesInText(o.a);
        delete o.bt;
      });
    });
    return samples;
  }

  function sampleViewer(view) {
    const slug = view.getAttribute("data-task");
    if (!(window.EVALKIT_INDEX || {})[slug]) return;
    if (typeof DecompressionStream === "undefined") {
      view.querySelector('[data-field="unsupported"]').classList.remove("hidden");
      return;
    }
    loadIndex(slug).then(function (index) { startViewer(view, slug, index); });
  }

  function startViewer(view, slug, index) {
    const where = new Map(index.ids.map(function (id, i) { return [id, i]; }));
    const parts = {}; // part number -> promise of its samples, each part loaded and inflated once
    let latest = 0; // only the last requested sample is drawn, whichever part arrives first
    function say(name) {
      view.querySelector('[data-field="' + name + '"]').classList.remove("hidden");
    }
    function part(k) {
      if (!parts[k]) {
        parts[k] = new Promise(function (resolve, reject) {
          const key = slug + "/" + k;
          const ready = function () {
            const packed = (window.EVALKIT_PARTS || {})[key];
            if (typeof packed !== "string") return reject(new Error("no data for " + key));
            inflate(packed).then(expandPart).then(resolve, reject);
            delete window.EVALKIT_PARTS[key]; // the inflated copy is kept in parts[k]
          };
          if ((window.EVALKIT_PARTS || {})[key] !== undefined) return ready();
          const tag = document.createElement("script");
          tag.src = view.getAttribute("data-data") + "part-" + k + ".js";
          tag.onload = ready;
          tag.onerror = reject;
          document.head.appendChild(tag);
        });
        parts[k].catch(function () { delete parts[k]; }); // a later visit may try again
      }
      return parts[k];
    }
    function show() {
      const ticket = ++latest;
      const wanted = decodeURIComponent(location.hash.slice(1));
      const position = wanted ? where.get(wanted) : index.ids.length ? 0 : undefined;
      if (position === undefined) return say("missing");
      if (typeof DecompressionStream === "undefined") return say("unsupported");
      const k = Math.floor(position / index.part_size);
      part(k).then(function (samples) {
        if (ticket === latest) renderSample(view, index, samples[position - k * index.part_size], position);
      }, function () { say("missing"); });
    }
    window.addEventListener("hashchange", show);
    show();
  }

  fillSampleTables();
  document.querySelectorAll("#sample-view").forEach(sampleViewer);

  document.querySelectorAll("table.sortable").forEach(function (table) {
    Array.from(table.tHead.rows[0].cells).forEach(function (header, index) {
      const button = header.querySelector("button.sort");
      if (!button) return;
      header.setAttribute("aria-sort", "none");
      button.addEventListener("click", function () { sortTable(table, index, header); });
    });
  });

  // Pairwise significance map: the page holds the matrix in leaderboard order; another order (data-orders on it)
  // is the same cells moved, drawn here when first asked, as site_pairwise.matrix_svg would draw it.
  const MATRIX_SIZE = 64, MATRIX_LEFT = 150, MATRIX_TOP = 120; // site_pairwise.MATRIX_LAYOUT

  function reorderedMap(svg, from, to, label) {
    const place = new Map(to.map(function (name, i) { return [name, i]; }));
    const moved = from.map(function (name) { return place.get(name); });
    const copy = svg.cloneNode(true);
    const was = svg.getAttribute("data-order") + " order";
    copy.setAttribute("data-order", label);
    copy.removeAttribute("data-orders");
    const title = copy.firstElementChild;
    title.textContent = title.textContent.slice(0, -was.length) + label + " order";
    const rows = Array.from(copy.querySelectorAll(":scope > text.row-label"));
    const cols = Array.from(copy.querySelectorAll(":scope > text.col-label"));
    const labels = [];
    rows.forEach(function (row, i) {
      const n = moved[i];
      row.setAttribute("y", MATRIX_TOP + n * MATRIX_SIZE + MATRIX_SIZE / 2);
      const x = MATRIX_LEFT + n * MATRIX_SIZE + MATRIX_SIZE / 2;
      cols[i].setAttribute("transform", "translate(" + x + "," + (MATRIX_TOP - 6) + ") rotate(-45)");
      labels[n] = [row, cols[i]];
    });
    const cells = [];
    Array.from(copy.children).forEach(function (el) {
      if (el === title || el.classList.contains("row-label") || el.classList.contains("col-label")) return;
      const rect = el.tagName.toLowerCase() === "rect" ? el : el.querySelector("rect");
      const j = Math.round((Number(rect.getAttribute("x")) - MATRIX_LEFT) / MATRIX_SIZE);
      const i = Math.round((Number(rect.getAttribute("y")) - MATRIX_TOP) / MATRIX_SIZE);
      const x = MATRIX_LEFT + moved[j] * MATRIX_SIZE, y = MATRIX_TOP + moved[i] * MATRIX_SIZE;
      rect.setAttribute("x", x);
      rect.setAttribute("y", y);
      const text = el === rect ? null : el.querySelector(":scope > text");
      if (text) {
        text.setAttribute("x", x + MATRIX_SIZE / 2);
        text.setAttribute("y", y + MATRIX_SIZE / 2);
      }
      cells[moved[i] * from.length + moved[j]] = el;
    });
    // Document order as matrix_svg writes it: labels by position, then the cells row by row.
    labels.forEach(function (pair) { copy.appendChild(pair[0]); copy.appendChild(pair[1]); });
    cells.forEach(function (el) { if (el) copy.appendChild(el); });
    return copy;
  }

  function drawOrder(section, order) {
    const panel = section.querySelector('[data-pairwise="' + order + '"]');
    const source = section.querySelector("svg.pairwise-map[data-orders]");
    if (!panel || !source || panel.querySelector("svg")) return;
    const orders = JSON.parse(source.getAttribute("data-orders"));
    if (orders[order]) panel.appendChild(reorderedMap(source, orders[""], orders[order], order));
  }

  document.querySelectorAll("button[data-pairwise-order]").forEach(function (button) {
    button.addEventListener("click", function () {
      const order = button.getAttribute("data-pairwise-order");
      const section = button.closest("section");
      drawOrder(section, order);
      section.querySelectorAll("[data-pairwise]").forEach(function (panel) {
        panel.classList.toggle("hidden", panel.getAttribute("data-pairwise") !== order);
      });
      section.querySelectorAll("button[data-pairwise-order]").forEach(function (other) {
        other.setAttribute("aria-pressed", other === button ? "true" : "false");
      });
    });
  });

  // Delegated: the viewer's legend is redrawn for every sample.
  document.addEventListener("change", function (event) {
    const box = event.target;
    if (!(box instanceof HTMLInputElement) || !box.hasAttribute("data-toggle")) return;
    const name = box.getAttribute("data-toggle");
    document.querySelectorAll("[data-layer]").forEach(function (group) {
      if (group.getAttribute("data-layer") === name) group.classList.toggle("hidden", !box.checked);
    });
  });
})();
