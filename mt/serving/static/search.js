"use strict";
// The search view: one sentence's beam search as a tree (POST /search), re-ranked at another
// length penalty in the page, re-decoded from a clicked node or typed words, with each live
// hypothesis's top-k next tokens, the attention of the hypothesis under the pointer, and a
// verdict against a reference (search error or model error). Uses el and shade (explorer.js).

const COLUMN = 96, ROW = 26, NODE_WIDTH = 84, NODE_HEIGHT = 20, MARGIN = 12;
const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  node.append(...children);
  return node;
}

// What beam search ranks a finished hypothesis by, in float32 as the search computes it
// (mt/decoding/beam_history.py normalised), so that ties break as there.
const penalty = (length, alpha) => Math.fround(((5 + length) / 6) ** alpha);
const normalised = (logProb, length, alpha) => Math.fround(logProb / penalty(length, alpha));

// The best finished hypothesis at alpha: the first of equals, in the order they finished.
function reranked(finished, alpha) {
  let best = null, bestScore = -Infinity;
  for (const h of finished) {
    const score = normalised(h.log_prob, h.step + 1, alpha);
    if (score > bestScore) [best, bestScore] = [h, score];
  }
  return best;
}

// Each node's place: step t (1-based, the root is 0), its row, and its parent's row. A kept
// node at -inf (null scores: a step with fewer possible tokens than the beam) is not drawn.
function layout(steps) {
  const nodes = [];
  steps.forEach((step, i) => {
    const t = i + 1;
    step.kept.forEach((n, row) => { if (n.log_prob !== null) nodes.push({ ...n, t, row, index: row, kind: "kept" }); });
    step.finished.forEach((n, j) => nodes.push({ ...n, t, row: step.kept.length + j, index: j, kind: "finished" }));
  });
  return nodes;
}

// The kept nodes of the path to the kept node at (t, index), root excluded, first first.
function pathTo(steps, t, index) {
  const nodes = [];
  for (let s = t; s >= 1; s--) {
    const node = steps[s - 1].kept[index];
    nodes.unshift(node);
    index = node.parent;
  }
  return nodes;
}

// The rows (one per step) of the path ending at node, for highlighting: [[t, row], ...].
function ancestry(steps, node) {
  const places = [[node.t, node.row]];
  let index = node.parent;
  for (let s = node.t - 1; s >= 1; s--) {
    places.push([s, index]);
    index = steps[s - 1].kept[index].parent;
  }
  return places;
}

function treeView(answer, onHover, onClick) {
  const nodes = layout(answer.steps);
  const rows = Math.max(1, ...nodes.map((n) => n.row + 1));
  const width = MARGIN * 2 + (answer.steps.length + 1) * COLUMN;
  const height = MARGIN * 2 + rows * ROW + 18;
  const at = (t, row) => [MARGIN + t * COLUMN, MARGIN + row * ROW];
  const drawing = svg("svg", { class: "tree", width, height, viewBox: `0 0 ${width} ${height}` });
  const [rx, ry] = at(0, 0);
  drawing.append(svg("text", { x: rx, y: ry + 14, class: "root" }, "<s>"));
  for (const node of nodes) {
    const [x, y] = at(node.t, node.row);
    const [px, py] = at(node.t - 1, node.t === 1 ? 0 : node.parent);
    drawing.append(svg("line", { x1: px + NODE_WIDTH, y1: py + NODE_HEIGHT / 2, x2: x, y2: y + NODE_HEIGHT / 2, "data-to": `${node.t}:${node.row}` }));
  }
  for (const node of nodes) {
    const [x, y] = at(node.t, node.row);
    const probability = Math.exp(node.token_log_prob);
    const box = svg("g", { class: `node ${node.kind}`, "data-place": `${node.t}:${node.row}`, transform: `translate(${x},${y})` },
      svg("rect", { width: NODE_WIDTH, height: NODE_HEIGHT, rx: 3, fill: shade(0.08 + 0.7 * probability) }),
      svg("text", { x: 4, y: 14, fill: probability > 0.5 ? "white" : "#1b1f24" }, node.piece.slice(0, 11)),
      svg("title", {}, `${node.piece}  p=${probability.toFixed(3)}  log p=${node.log_prob.toFixed(3)}  score=${node.score.toFixed(3)}`));
    box.addEventListener("mouseenter", () => onHover(node));
    if (node.kind === "kept") box.addEventListener("click", () => onClick(node));
    drawing.append(box);
  }
  answer.steps.forEach((step, i) => {
    if (!step.pruned.length) return;
    const [x] = at(i + 1, 0);
    const label = svg("text", { x, y: height - 6, class: "pruned" }, `+${step.pruned.length} pruned`);
    label.append(svg("title", {}, step.pruned.map((n) => `${n.piece} ${Math.exp(n.token_log_prob).toFixed(3)}`).join("\n")));
    drawing.append(label);
  });
  return drawing;
}

function mark(drawing, steps, node, name) {
  drawing.querySelectorAll(`.${name}`).forEach((n) => n.classList.remove(name));
  if (!node) return;
  for (const [t, row] of ancestry(steps, node)) {
    drawing.querySelector(`[data-place="${t}:${row}"]`)?.classList.add(name);
    drawing.querySelector(`[data-to="${t}:${row}"]`)?.classList.add(name);
  }
}

// A finished hypothesis's node of the tree, placed as layout places it.
function finishedNode(answer, hypothesis) {
  const step = answer.steps[hypothesis.step];
  return { ...step.finished[hypothesis.index], t: hypothesis.step + 1, row: step.kept.length + hypothesis.index, kind: "finished" };
}

// The finished hypothesis through node (the best-ranked one), for its attention.
function finishedThrough(answer, node, alpha) {
  const through = answer.finished.filter((h) => ancestry(answer.steps, finishedNode(answer, h))
    .some(([t, row]) => t === node.t && row === node.row));
  return reranked(through, alpha);
}

// The attention of hypothesis over the source, its rows up to the hovered node's (labels).
function attentionRows(answer, hypothesis, labels) {
  if (!hypothesis) return el("p", { class: "none" }, "No finished hypothesis passes here.");
  if (!hypothesis.attention) return el("p", { class: "none" }, "No attention: the decoder sees only the encoder's final state.");
  const head = el("tr", {}, el("th"), ...answer.source.map((p) => el("th", {}, p)));
  const rows = labels.map((label, i) => el("tr", { class: i === labels.length - 1 ? "active" : "" }, el("th", {}, label),
    ...hypothesis.attention[i].map((x) => { const cell = el("td"); cell.style.background = shade(x); return cell; })));
  return el("table", { class: "heatmap" }, el("thead", {}, head), el("tbody", {}, ...rows));
}

// What the pointer is on: the node's scores, its top-k next tokens, and the attention of
// the best finished hypothesis through it.
function describeNode(answer, node, alpha) {
  const next = node.kind === "kept" && node.t < answer.steps.length ? answer.steps[node.t].alternatives[node.row] || [] : [];
  const before = pathTo(answer.steps, node.t - 1, node.parent).map((n) => n.piece);
  return el("div", { class: "hovered" },
    el("p", {}, el("strong", {}, node.piece), before.length ? ` after “${before.join(" ")}”` : " first",
      `: p=${Math.exp(node.token_log_prob).toFixed(3)}, `,
      `log p=${node.log_prob.toFixed(3)}, score=${node.score.toFixed(3)} (${node.kind})`),
    next.length ? el("ol", { class: "alternatives" }, ...next.map((a) => el("li", {}, `${a.piece} `, el("span", { class: "score" }, Math.exp(a.log_prob).toFixed(3))))) : "",
    attentionRows(answer, finishedThrough(answer, node, alpha), [...before, node.piece]));
}

function verdictView(reference) {
  const said = {
    "exact": "the output is the reference.",
    "search error": "the model prefers the reference: a bigger beam or another length penalty could find it.",
    "model error": "the model prefers its own output: no search fixes this; the model must.",
    "forced prefix": "the output starts with a forced prefix, so it is not the search's own choice; clear the prefix for a verdict.",
  }[reference.verdict];
  return el("p", { class: "verdict" }, el("strong", {}, reference.verdict), ` (reference ${reference.reference_score.toFixed(3)}, `,
    `output ${reference.output_score.toFixed(3)}): ${said}`);
}

function searchView(model, sentence, tgtLang) {
  const beam = el("input", { class: "search-beam", type: "number", min: 2, max: 16, value: Math.max(model.decode.beam_size, 2) });
  const alpha = el("input", { class: "alpha", type: "range", min: 0, max: 3, step: 0.1, value: model.decode.length_penalty });
  const alphaShown = el("span", { class: "alpha-value" }, Number(alpha.value).toFixed(1));
  const typed = el("input", { class: "prefix-text", placeholder: "words to start with" });
  const reference = el("input", { class: "reference", placeholder: "a reference translation" });
  const again = el("button", { class: "search-again", type: "button" }, "Search");
  const chosen = el("p", { class: "chosen" });
  const holder = el("div", { class: "tree-holder" });
  const hovered = el("div", { class: "hover-info" });
  const state = { prefix: [], answer: null, drawing: null };

  const choose = () => {
    const { answer, drawing } = state;
    if (!answer || !answer.finished.length) return;
    const value = Number(alpha.value);
    alphaShown.textContent = value.toFixed(1);
    const best = reranked(answer.finished, value);
    mark(drawing, answer.steps, finishedNode(answer, best), "chosen");
    const note = value === answer.length_penalty ? "chosen by the search" : `re-ranked at α=${value.toFixed(1)} (search again to let α change which hypotheses finish)`;
    chosen.replaceChildren(el("span", { class: "best" }, best.text), el("span", { class: "note" }, ` · ${note}`));
  };
  const search = async () => {
    const request = { model: model.name, sentence, beam_size: Number(beam.value), length_penalty: Number(alpha.value), prefix: state.prefix };
    if (typed.value.trim()) request.prefix_text = typed.value;
    if (reference.value.trim()) request.reference = reference.value;
    if (tgtLang) request.tgt_lang = tgtLang;
    holder.replaceChildren(el("p", { class: "none" }, "searching…"));
    hovered.replaceChildren();
    const response = await fetch("/search", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(request) });
    const answer = await response.json();
    if (!response.ok) {
      holder.replaceChildren(el("p", { class: "error" }, answer.error));
      return;
    }
    state.answer = answer;
    state.drawing = treeView(answer, (node) => {
      mark(state.drawing, answer.steps, node, "hover");
      hovered.replaceChildren(describeNode(answer, node, Number(alpha.value)));
    }, (node) => {
      state.prefix = pathTo(answer.steps, node.t, node.row).map((n) => n.token);
      typed.value = "";
      search();
    });
    const forced = answer.prefix.length ? [el("p", { class: "forced" }, `forced prefix: ${answer.prefix.map((p) => p.piece).join(" ")} `,
      el("button", { type: "button", class: "clear-prefix" }, "clear"))] : [];
    forced.forEach((p) => p.querySelector("button").addEventListener("click", () => { state.prefix = []; search(); }));
    holder.replaceChildren(...forced, answer.reference ? verdictView(answer.reference) : "", el("div", { class: "scroll" }, state.drawing));
    choose();
  };
  alpha.addEventListener("input", choose);
  beam.addEventListener("change", search);
  again.addEventListener("click", search);
  const view = el("div", { class: "search" },
    el("div", { class: "controls" }, el("label", {}, "beam ", beam), el("label", {}, "length penalty ", alpha, alphaShown)),
    el("div", { class: "controls" }, typed, reference, again), chosen, holder, hovered);
  search();
  return view;
}
