// svr export browser: plain JS, no build step. Data arrive as scripts that call SVR.addPage /
// SVR.addSample (file:// pages may not fetch()); pages of the grid index load when needed.
(function () {
  "use strict";
  const SVR = window.SVR;
  const meta = SVR.meta;
  const FACETS = ["stage", "field", "eye", "task"];
  const BATCH = 120; // cards rendered per scroll step
  const pages = new Array(meta.pages).fill(null);
  const pageWaiters = {};
  const samples = {};
  const state = { matches: [], scanned: 0, rendered: 0, filter: {}, current: null, loadingAll: false, generation: 0 };
  const layerOn = { sectors: false, text_boxes: true, lesion_boxes: false, instances: false };
  const $ = (id) => document.getElementById(id);

  SVR.addPage = function (k, columns) {
    pages[k] = columns;
  };
  SVR.addSample = function (index, record) {
    samples[index] = record;
  };

  function pad(n, width) {
    return String(n).padStart(width, "0");
  }
  function assetDir(index) {
    return "a/" + pad(Math.floor(index / 1000), 4) + "/";
  }
  function stem(index) {
    return assetDir(index) + pad(index, 7);
  }
  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") node.textContent = v;
      else node.setAttribute(k, v);
    }
    for (const c of children || []) node.append(c);
    return node;
  }
  function svgEl(tag, attrs, text) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function loadScript(src) {
    return new Promise(function (resolve, reject) {
      const s = document.createElement("script");
      s.src = src;
      s.onload = function () {
        s.remove();
        resolve();
      };
      s.onerror = function () {
        s.remove();
        reject(new Error("cannot load " + src));
      };
      document.head.append(s);
    });
  }
  function loadPage(k) {
    if (pages[k]) return Promise.resolve(pages[k]);
    if (!pageWaiters[k]) pageWaiters[k] = loadScript("pages/p" + pad(k, 5) + ".js").then(() => pages[k]);
    return pageWaiters[k];
  }
  function loadedPages() {
    let n = 0;
    while (n < pages.length && pages[n]) n++;
    return n; // pages load in order, so the loaded ones are a prefix
  }

  // ---- filters ------------------------------------------------------------------------------------
  function readFilter() {
    const form = $("filters");
    const f = {};
    for (const facet of FACETS) f[facet] = form.elements[facet].value;
    f.lesion = form.elements.lesion.value;
    f.min = form.elements.min.value;
    f.max = form.elements.max.value;
    return f;
  }
  function filterActive(f) {
    return Object.values(f).some((v) => v !== "");
  }
  function rowMatches(p, i, f) {
    for (const facet of FACETS) if (f[facet] !== "" && p[facet][i] !== Number(f[facet])) return false;
    const counts = p.counts[i];
    const total = counts.reduce((a, b) => a + b, 0);
    let n = total;
    if (f.lesion === "-" && total > 0) return false;
    if (f.lesion === "*" && total === 0) return false;
    if (f.lesion !== "" && f.lesion !== "*" && f.lesion !== "-") {
      n = counts[Number(f.lesion)];
      if (f.min === "" && f.max === "" && n === 0) return false;
    }
    if (f.min !== "" && n < Number(f.min)) return false;
    if (f.max !== "" && n > Number(f.max)) return false;
    return true;
  }
  function matchPage(k) {
    // Pages are matched in order, each once per filter (state.scanned of them so far).
    if (k !== state.scanned) return;
    state.scanned++;
    const p = pages[k];
    for (let i = 0; i < p.index.length; i++) if (rowMatches(p, i, state.filter)) state.matches.push([k, i]);
  }
  function updateStatus() {
    const loaded = state.scanned;
    const scanned = loaded === meta.pages ? meta.rows : Math.min(meta.rows, loaded * meta.page_size);
    let text = state.matches.length + " of " + scanned + " pairs match";
    if (scanned < meta.rows) text += " (" + meta.rows + " in all; index pages " + loaded + "/" + meta.pages + " loaded)";
    $("status").textContent = text;
  }
  function applyFilter() {
    state.generation++;
    state.filter = readFilter();
    state.matches = [];
    state.scanned = 0;
    state.rendered = 0;
    $("grid").replaceChildren();
    const loaded = loadedPages();
    for (let k = 0; k < loaded; k++) matchPage(k);
    renderMore();
    updateStatus();
    if (filterActive(state.filter)) loadAll(state.generation);
    else onSentinel();
  }
  async function loadNext(generation) {
    const k = state.scanned;
    if (k >= meta.pages) return false;
    await loadPage(k);
    if (generation !== state.generation) return false;
    matchPage(k);
    updateStatus();
    return true;
  }
  async function loadAll(generation) {
    // A filter scans every page, loaded one after another in the background.
    while (generation === state.generation && (await loadNext(generation))) {
      if (sentinelNear()) onSentinel();
    }
  }

  // ---- grid ---------------------------------------------------------------------------------------
  function card(k, i) {
    const p = pages[k];
    const index = p.index[i];
    const stage = meta.vocab.stage[p.stage[i]];
    const counts = p.counts[i];
    const lesionText = meta.lesion_types.map((t, j) => (counts[j] ? counts[j] + " " + shortType(t) : "")).filter(Boolean).join(" · ");
    const a = el("a", { class: "card stage-" + stage, href: "#s=" + index, "data-index": index, role: "listitem" }, [
      el("img", { src: stem(index) + ".t.jpg", loading: "lazy", alt: "sample " + p.id[i], width: 128, height: 128 }),
      el("span", { class: "cap" }, [
        el("b", { text: p.id[i] }),
        el("span", { class: "badge", text: stage }),
        el("span", { text: meta.vocab.eye[p.eye[i]] + " · " + meta.vocab.field[p.field[i]] + " · " + meta.vocab.task[p.task[i]] }),
        el("span", { class: "lesions", text: lesionText || "no lesions" }),
      ]),
    ]);
    return a;
  }
  function shortType(t) {
    return { nonperfusion: "NP", microaneurysm: "MA", neovascularization: "NV", irma: "IRMA" }[t] || t;
  }
  function renderMore() {
    const grid = $("grid");
    const stop = Math.min(state.matches.length, state.rendered + BATCH);
    const frag = document.createDocumentFragment();
    for (let j = state.rendered; j < stop; j++) frag.append(card(state.matches[j][0], state.matches[j][1]));
    grid.append(frag);
    state.rendered = stop;
  }
  function sentinelNear() {
    return $("sentinel").getBoundingClientRect().top < window.innerHeight + 800;
  }
  async function onSentinel() {
    // The observer fires on crossings only: keep filling while the sentinel stays near the viewport.
    const generation = state.generation;
    while ($("sample-view").hidden && generation === state.generation && sentinelNear()) {
      if (state.rendered < state.matches.length) renderMore();
      else if (filterActive(state.filter) || !(await loadNext(generation))) break;
    }
  }

  // ---- sample page --------------------------------------------------------------------------------
  function layerList(rec) {
    const list = meta.overlays.map((o) => {
      const found = rec.overlays.find((x) => x.key === o.key);
      return { key: o.key, label: o.label, colour: o.colour, band: true, available: !!(found && found.pixels) };
    });
    list.push({ key: "instances", label: "Lesion instances (" + rec.instances + ")", colour: meta.instance_colours[0], band: true, available: rec.instances > 0 });
    list.push({ key: "sectors", label: "ETDRS sectors", colour: "#ffffff", band: true, available: rec.sectors.length > 0 });
    list.push({ key: "text_boxes", label: "Boxes in the text (" + rec.text_boxes.length + ")", colour: "#00ffff", available: rec.text_boxes.length > 0 });
    list.push({ key: "lesion_boxes", label: "Measured lesion boxes (" + rec.lesions.length + ")", colour: "#ffffff", available: rec.lesions.length > 0 });
    return list;
  }
  function bandStyle(url, key) {
    // Band k of the sprite (meta.bands) scaled to the stage: the sprite is N stage-heights tall.
    const n = meta.bands.length;
    const k = meta.bands.indexOf(key);
    return "background-image:url('" + url + "');background-size:100% " + n * 100 + "%;background-position:0 " + (n > 1 ? (100 * k) / (n - 1) : 0) + "%";
  }
  function fmt(v, digits) {
    return typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toFixed(digits === undefined ? 3 : digits)) : String(v);
  }
  function tableRows(table, header, rows) {
    table.replaceChildren(el("tr", {}, header.map((h) => el("th", { text: h }))), ...rows.map((r) => el("tr", {}, r.map((c) => el("td", { text: c })))));
  }
  function sameBox(a, b) {
    return a.length === 4 && a.every((v, i) => v === b[i]);
  }
  function showSample(rec) {
    state.current = rec.index;
    $("sample-title").textContent = rec.id + " · " + rec.stage + " (intended " + rec.intended_stage + ") · " + rec.laterality + " · " + rec.fov + " · task " + rec.task + position();
    $("base").onload = () => {
      if (state.current === rec.index && $("stage").dataset.loaded === "sprite") $("stage").dataset.loaded = "1";
    };
    $("base").src = stem(rec.index) + ".png";
    $("eye").textContent = rec.laterality === "OD" ? "right eye: nasal to the right" : "left eye: nasal to the left";
    const layers = layerList(rec);
    const overlays = $("overlays");
    overlays.replaceChildren();
    const toggles = $("toggles");
    toggles.replaceChildren();
    const sprite = stem(rec.index) + ".o.png";
    const stageNode = $("stage");
    stageNode.dataset.loaded = "0";
    const probe = new Image();
    probe.onload = () => {
      if (state.current === rec.index) stageNode.dataset.loaded = $("base").complete ? "1" : "sprite";
    };
    probe.src = sprite;
    layers.forEach((layer, n) => {
      if (layer.band && layer.available) {
        overlays.append(el("div", { class: "overlay", style: bandStyle(sprite, layer.key), "data-layer": layer.key, hidden: "" }));
      }
      const box = el("input", { type: "checkbox", "data-layer": layer.key, id: "t-" + layer.key });
      if (!layer.available) box.disabled = true;
      box.checked = layer.available && !!layerOn[layer.key];
      box.addEventListener("change", () => {
        layerOn[layer.key] = box.checked;
        applyLayers();
      });
      const key = n < 9 ? String(n + 1) : "";
      toggles.append(el("label", { class: "toggle" + (layer.available ? "" : " empty"), for: "t-" + layer.key, "data-key": key }, [
        box, el("span", { class: "swatch", style: "background:" + layer.colour }),
        el("span", { text: (key ? key + " " : "") + layer.label + (layer.available ? "" : " (none)") }),
      ]));
    });
    // Boxes: the text's (0-1000 grid, the SVG's own coordinates); red when no measured lesion has that box.
    const tb = $("text-boxes");
    tb.replaceChildren();
    for (const b of rec.text_boxes) {
      const hit = rec.lesions.some((l) => l.type === b.label && sameBox(b.box, l.bbox_rel));
      const [x0, y0, x1, y1] = b.box;
      tb.append(svgEl("rect", { class: "text-box" + (hit ? "" : " miss"), x: x0, y: y0, width: Math.max(1, x1 - x0), height: Math.max(1, y1 - y0), "data-label": b.label }));
      tb.append(svgEl("text", { class: "box-label", x: x0, y: Math.max(14, y0 - 4) }, shortType(b.label) + (hit ? "" : " ✗")));
    }
    const lb = $("lesion-boxes");
    lb.replaceChildren();
    for (const l of rec.lesions) {
      const [x0, y0, x1, y1] = l.bbox_rel;
      lb.append(svgEl("rect", { class: "lesion-box", x: x0, y: y0, width: Math.max(1, x1 - x0), height: Math.max(1, y1 - y0) }));
    }
    const sl = $("sector-labels");
    sl.replaceChildren();
    for (const s of rec.sectors) {
      const label = s.short + (s.density_pct == null ? "" : " " + s.density_pct.toFixed(1) + "%");
      sl.append(svgEl("text", { class: "sector-label" + (s.named ? " named" : ""), x: s.x * 1000, y: s.y * 1000 }, label));
    }
    applyLayers();
    // Conversation.
    $("conversation").replaceChildren(...rec.messages.map((m) => el("div", { class: "msg " + m.role }, [
      el("b", { text: m.role }),
      ...m.parts.map((p) => (p.type === "image" ? el("span", { class: "img-part", text: "[image]" }) : el("p", { text: p.text || "" }))),
    ])));
    const units = { contrast: "", faz_area_mm2: "mm²", faz_circularity: "", faz_offset_mm: "mm", density_pct: "%", tortuosity_index: "", nonperfusion_mm2: "mm²" };
    tableRows($("findings"), ["measure", "value", "unit"], Object.entries(rec.measured).map(([k, v]) => [k, fmt(v, k === "tortuosity_index" ? 4 : 3), units[k] || ""]));
    tableRows($("lesions"), ["type", "sector", "area mm²", "box (0–1000)"], rec.lesions.map((l) => [l.type, l.sector, fmt(l.area_mm2, 3), l.bbox_rel.join(", ")]));
    tableRows($("sectors"), ["sector", "name", "vessel density", "named in text"], rec.sectors.map((s) => [s.short, s.name, s.density_pct == null ? "–" : s.density_pct.toFixed(1) + "%", s.named ? "yes" : ""]));
  }
  function applyLayers() {
    for (const node of document.querySelectorAll("#overlays .overlay")) node.hidden = !layerOn[node.dataset.layer];
    $("text-boxes").style.display = layerOn.text_boxes ? "" : "none";
    $("lesion-boxes").style.display = layerOn.lesion_boxes ? "" : "none";
    $("sector-labels").style.display = layerOn.sectors ? "" : "none";
    for (const box of document.querySelectorAll("#toggles input")) box.checked = !box.disabled && !!layerOn[box.dataset.layer];
  }
  function position() {
    const j = matchPosition(state.current);
    const more = state.scanned < meta.pages ? "+" : ""; // index pages not scanned yet
    return j < 0 ? "" : " · " + (j + 1) + "/" + state.matches.length + more + (filterActive(state.filter) ? " matching" : "");
  }
  function matchPosition(index) {
    return state.matches.findIndex(([k, i]) => pages[k].index[i] === index);
  }
  async function openSample(index) {
    $("grid-view").hidden = true;
    $("sample-view").hidden = false;
    if (!samples[index]) {
      try {
        await loadScript(stem(index) + ".js");
      } catch (e) {
        $("sample-title").textContent = "no sample " + index + " in this export";
        return;
      }
    }
    showSample(samples[index]);
  }
  async function step(delta) {
    if (state.current === null) return;
    let j = matchPosition(state.current);
    if (j < 0) return;
    j += delta;
    if (j >= state.matches.length && delta > 0) await loadNext(state.generation);
    if (j < 0 || j >= state.matches.length) return;
    const [k, i] = state.matches[j];
    location.hash = "#s=" + pages[k].index[i];
  }
  function showGrid() {
    $("sample-view").hidden = true;
    $("grid-view").hidden = false;
    if (state.current !== null) {
      const node = document.querySelector('.card[data-index="' + state.current + '"]');
      if (node) node.focus();
    }
  }
  function route() {
    const m = /^#s=(\d+)$/.exec(location.hash);
    if (m) openSample(Number(m[1]));
    else showGrid();
  }

  // ---- keyboard -----------------------------------------------------------------------------------
  function onKey(e) {
    if (e.target.matches("input[type=number], select") || e.altKey || e.ctrlKey || e.metaKey) return;
    const inSample = !$("sample-view").hidden;
    if (inSample) {
      if (e.key === "ArrowRight" || e.key === "j") step(1);
      else if (e.key === "ArrowLeft" || e.key === "k") step(-1);
      else if (e.key === "Escape") location.hash = "";
      else if (e.key === "b") toggle("text_boxes");
      else if (e.key === "s") toggle("sectors");
      else if (/^[1-9]$/.test(e.key)) {
        const label = document.querySelector('#toggles label[data-key="' + e.key + '"] input');
        if (label && !label.disabled) toggle(label.dataset.layer);
      } else return;
      e.preventDefault();
    } else if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
      const cards = Array.from(document.querySelectorAll("#grid .card"));
      const j = cards.indexOf(document.activeElement);
      const next = cards[Math.max(0, Math.min(cards.length - 1, j + (e.key === "ArrowRight" ? 1 : -1)))];
      if (next) next.focus();
      e.preventDefault();
    }
  }
  function toggle(key) {
    layerOn[key] = !layerOn[key];
    applyLayers();
  }

  // ---- start --------------------------------------------------------------------------------------
  function start() {
    $("filters").addEventListener("change", applyFilter);
    $("filters").addEventListener("input", (e) => e.target.type === "number" && applyFilter());
    $("filters").addEventListener("reset", () => setTimeout(applyFilter, 0));
    $("back").addEventListener("click", () => (location.hash = ""));
    $("prev").addEventListener("click", () => step(-1));
    $("next").addEventListener("click", () => step(1));
    $("home").addEventListener("click", (e) => {
      e.preventDefault();
      location.hash = "";
    });
    $("opacity").addEventListener("input", (e) => document.documentElement.style.setProperty("--overlay-opacity", e.target.value));
    document.addEventListener("keydown", onKey);
    window.addEventListener("hashchange", route);
    new IntersectionObserver((entries) => entries.some((x) => x.isIntersecting) && onSentinel(), { rootMargin: "800px" }).observe($("sentinel"));
    loadPage(0).then(() => {
      applyFilter();
      document.body.dataset.readyMs = performance.now().toFixed(1); // since navigation start
      document.body.dataset.ready = "1";
      route();
    });
  }
  start();
})();
