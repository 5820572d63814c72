// evalkit static site: sortable tables and box-layer toggles. No dependencies; never writes HTML from data.
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

  document.querySelectorAll("table.sortable").forEach(function (table) {
    Array.from(table.tHead.rows[0].cells).forEach(function (header, index) {
      const button = header.querySelector("button.sort");
      if (!button) return;
      header.setAttribute("aria-sort", "none");
      button.addEventListener("click", function () { sortTable(table, index, header); });
    });
  });

  // Pairwise significance map: show the matrix in the chosen model order.
  document.querySelectorAll("button[data-pairwise-order]").forEach(function (button) {
    button.addEventListener("click", function () {
      const order = button.getAttribute("data-pairwise-order");
      const section = button.closest("section");
      section.querySelectorAll("[data-pairwise]").forEach(function (panel) {
        panel.classList.toggle("hidden", panel.getAttribute("data-pairwise") !== order);
      });
      section.querySelectorAll("button[data-pairwise-order]").forEach(function (other) {
        other.setAttribute("aria-pressed", other === button ? "true" : "false");
      });
    });
  });

  document.querySelectorAll("input[data-toggle]").forEach(function (box) {
    box.addEventListener("change", function () {
      const layer = box.getAttribute("data-toggle");
      document.querySelectorAll("[data-layer]").forEach(function (group) {
        if (group.getAttribute("data-layer") === layer) group.classList.toggle("hidden", !box.checked);
      });
    });
  });
})();
