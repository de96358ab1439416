"use strict";
// The attention explorer: every served model translates the input side by side, and each
// translation shows where its model looked. Plain DOM, no build step, no network but this
// server's own JSON API (GET /models, POST /translate).

const $ = (selector, root = document) => root.querySelector(selector);

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  node.append(...children);
  return node;
}

const shade = (weight) => `rgba(8, 48, 107, ${weight.toFixed(3)})`;

function averageOfHeads(heads) {
  return heads[0].map((row, i) =>
    row.map((_, j) => heads.reduce((sum, head) => sum + head[i][j], 0) / heads.length));
}

function describe(model) {
  const attention = model.attention.length ? `attention: ${model.attention.join(", ")}` : "no attention";
  return `${model.architecture} (${model.engine}) · ${model.parameters.toLocaleString("en")} parameters · ${attention}`;
}

async function loadModels() {
  const models = await (await fetch("/models")).json();
  // A multilingual model translates into the language chosen beside its name.
  const languageChooser = (model) => model.tgt_langs.length > 1
    ? [el("label", {}, "into ", el("select", { class: "tgt-lang" },
      ...model.tgt_langs.map((lang) => el("option", { value: lang }, lang))))]
    : [];
  $("#models").replaceChildren(...models.map((model) =>
    el("section", { class: "model", "data-model": model.name },
      el("h2", {}, model.name, " ", ...languageChooser(model)),
      el("p", { class: "about" }, describe(model)),
      el("div", { class: "results" }))));
  if (models.length) $("#languages").textContent = `(${models[0].src_lang} → ${models[0].tgt_lang})`;
  return models;
}

// One map (heads x target x source), with a head chooser, the pieces and a heatmap.
function attentionView(attention) {
  const names = Object.keys(attention.maps);
  const mapChooser = el("select", { class: "map" }, ...names.map((n) => el("option", { value: n }, n)));
  mapChooser.value = names[names.length - 1];
  const headChooser = el("select", { class: "head" });
  const source = el("p", { class: "pieces source" });
  const target = el("p", { class: "pieces target" });
  const holder = el("div");

  const weights = () => {
    const heads = attention.maps[mapChooser.value];
    return headChooser.value === "average" ? averageOfHeads(heads) : heads[Number(headChooser.value)];
  };
  const fillHeads = () => {
    const count = attention.maps[mapChooser.value].length;
    const options = [el("option", { value: "average" }, count > 1 ? "average of heads" : "one head")];
    for (let k = 0; count > 1 && k < count; k++) options.push(el("option", { value: k }, `head ${k + 1}`));
    headChooser.replaceChildren(...options);
  };
  const highlight = (row) => {
    const w = weights();
    [...source.children].forEach((piece, j) => {
      piece.style.background = row === null ? "" : shade(w[row][j]);
      piece.style.color = row !== null && w[row][j] > 0.5 ? "white" : "";
    });
    [...target.children].forEach((piece, i) => piece.classList.toggle("active", i === row));
    holder.querySelectorAll("tbody tr").forEach((tr, i) => tr.classList.toggle("active", i === row));
  };
  const hoverable = (node, row) => {
    node.addEventListener("mouseenter", () => highlight(row));
    node.addEventListener("mouseleave", () => highlight(null));
    return node;
  };
  const draw = () => {
    const w = weights();
    source.replaceChildren(...attention.source.map((p) => el("span", { class: "piece" }, p)));
    target.replaceChildren(...attention.target.map((p, i) => hoverable(el("span", { class: "piece" }, p), i)));
    const head = el("tr", {}, el("th"), ...attention.source.map((p) => el("th", {}, p)));
    const rows = attention.target.map((p, i) => hoverable(el("tr", {}, el("th", {}, p),
      ...w[i].map((x, j) => {
        const cell = el("td", { title: `${p} → ${attention.source[j]}: ${x.toFixed(3)}` });
        cell.style.background = shade(x);
        return cell;
      })), i));
    holder.replaceChildren(el("table", { class: "heatmap" }, el("thead", {}, head), el("tbody", {}, ...rows)));
  };
  mapChooser.addEventListener("change", () => { fillHeads(); draw(); });
  headChooser.addEventListener("change", draw);
  fillHeads();
  draw();
  const controls = names.length > 1 || attention.maps[names[0]].length > 1
    ? [el("div", { class: "controls" }, mapChooser, headChooser)] : [];
  return el("div", { class: "attention" }, ...controls, source, target, holder);
}

// Characters start to end of text, counted as the server counts them (code points).
const characters = (text, [start, end]) => Array.from(text).slice(start, end).join("");

// One input line's translation; each of its sentences can open the search view under it.
function translationView(translation, model, sentence, tgtLang) {
  const view = el("article", { class: "sentence" }, el("p", { class: "translation" }, translation.text));
  const searchButton = (text) => {
    const open = el("button", { type: "button", class: "open-search" }, "search");
    open.addEventListener("click", () => open.replaceWith(searchView(model, text, tgtLang)));
    return open;
  };
  if (model.search && translation.sentences.length === 1) view.append(searchButton(sentence));
  view.append(el("ol", { class: "nbest" }, ...translation.nbest.map((h) =>
    el("li", {}, el("span", { class: "score" }, h.score.toFixed(3)), " ", h.text))));
  // A paragraph: each sentence's span of the translation, and its attention, one by one.
  const parts = translation.attention === null && translation.sentences.length > 1
    ? translation.sentences : [translation];
  for (const part of parts) {
    if (part !== translation) {
      view.append(el("p", { class: "span" }, characters(translation.text, part.target)));
      if (model.search) view.append(searchButton(characters(sentence, part.source)));
    }
    const attention = part.attention;
    if (attention && Object.keys(attention.maps).length) view.append(attentionView(attention));
    else if (attention) view.append(el("p", { class: "none" }, "No attention: the decoder sees only the encoder's final state."));
  }
  return view;
}

async function translateWith(model, sentences, beam, nbest) {
  const where = $(`section[data-model="${CSS.escape(model.name)}"]`);
  const section = $(".results", where);
  const request = { model: model.name, sentences, beam_size: beam, nbest: Math.min(nbest, beam), attention: true };
  const chosen = $(".tgt-lang", where);
  if (chosen) request.tgt_lang = chosen.value;
  const response = await fetch("/translate", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(request),
  });
  const body = await response.json();
  section.replaceChildren(...(response.ok
    ? body.translations.map((t, i) => translationView(t, model, sentences[i], request.tgt_lang))
    : [el("p", { class: "error" }, body.error)]));
}

async function main() {
  const models = await loadModels();
  $("#ask").addEventListener("submit", async (event) => {
    event.preventDefault();
    const sentences = $("#source").value.split("\n").map((s) => s.trim()).filter(Boolean);
    if (!sentences.length) return;
    const beam = Number($("#beam").value), nbest = Number($("#nbest").value);
    $("#status").textContent = "translating…";
    try {
      await Promise.all(models.map((model) => translateWith(model, sentences, beam, nbest)));
      $("#status").textContent = "";
    } catch (error) {
      $("#status").textContent = String(error);
    }
  });
}

main();
