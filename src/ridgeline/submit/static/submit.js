/*
 * The self-submission page: fingerprints files on this device and sends only hashes.
 *
 * PDQ comes from Ridgeline's own C core compiled to WebAssembly (pdq.js / pdq.wasm,
 * built by scripts/build-pdq-wasm), fed the same pixels Pillow gives `ridgeline hash`:
 * PNG through png.js (Pillow's rules), other images through createImageBitmap with no
 * colour conversion and no premultiplication (JPEG: the browser's libjpeg-turbo gives
 * Pillow's pixels; docs/self-submission.md lists what was checked). MD5 is SparkMD5,
 * read in slices so large videos need little memory.
 *
 * The only requests this page makes carry JSON with hashes (and a case number); files
 * are read with the File API and never put in a request.
 */
(function () {
  "use strict";

  const T = JSON.parse(document.getElementById("rl-strings").textContent);
  const API = "api/";
  const MIN_QUALITY = 50;
  const CHUNK = 4 << 20;
  const items = []; // {name, kind, md5, pdq, quality, note, send}
  let pdqModule = null;

  function format(text, values) {
    return text.replace(/\{(\w+)\}/g, (_, k) => (k in values ? String(values[k]) : ""));
  }

  /* A tiny module using one SIMD instruction: valid only where WebAssembly SIMD is. */
  const SIMD_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3,
    2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11]);

  /* pdq.wasm (SIMD) or pdq-scalar.wasm: the same C core, the same bits. `?pdq=scalar`
     forces the second (the tests check both). */
  function wasmFile() {
    const forced = new URLSearchParams(location.search).get("pdq") === "scalar";
    return !forced && WebAssembly.validate(SIMD_PROBE) ? "pdq.wasm" : "pdq-scalar.wasm";
  }

  function pdq() {
    if (!pdqModule) {
      const file = wasmFile();
      document.body.dataset.pdqWasm = file;
      pdqModule = createPdqModule({ locateFile: (path, prefix) => prefix + (path === "pdq.wasm" ? file : path) });
    }
    return pdqModule;
  }

  async function md5Of(file) {
    const spark = new SparkMD5.ArrayBuffer();
    for (let at = 0; at < file.size; at += CHUNK) {
      spark.append(await file.slice(at, at + CHUNK).arrayBuffer());
    }
    return spark.end();
  }

  /* Pixels as {width, height, channels, pixels}, or null when this browser cannot decode. */
  async function pixelsOf(file) {
    const head = new Uint8Array(await file.slice(0, 8).arrayBuffer());
    if (RidgelinePng.isPng(head)) {
      return RidgelinePng.decodePng(new Uint8Array(await file.arrayBuffer()));
    }
    const bitmap = await createImageBitmap(file, {
      colorSpaceConversion: "none",
      premultiplyAlpha: "none",
      imageOrientation: "from-image",
    });
    try {
      const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
      const ctx = canvas.getContext("2d", { willReadFrequently: true });
      ctx.drawImage(bitmap, 0, 0);
      const data = ctx.getImageData(0, 0, bitmap.width, bitmap.height).data;
      return { width: bitmap.width, height: bitmap.height, channels: 4, pixels: data };
    } finally {
      bitmap.close();
    }
  }

  /* PDQ of decoded pixels through the WebAssembly core: {hash, quality}. */
  async function pdqOf(img) {
    const M = await pdq();
    const n = img.pixels.length;
    const ptr = M._pdq_alloc(n);
    if (!ptr) throw new Error("out of memory");
    try {
      M.HEAPU8.set(img.pixels, ptr);
      const quality = M._pdq_hash(ptr, img.width, img.height, img.channels, 0);
      if (quality < 0) throw new Error("could not hash");
      return { hash: M.UTF8ToString(M._pdq_hex(0)), quality };
    } finally {
      M._pdq_free(ptr);
    }
  }

  function kindOf(file) {
    if (file.type.startsWith("image/")) return "image";
    if (file.type.startsWith("video/")) return "video";
    return "other";
  }

  /* Everything the page computes for one file (used by the page and the tests). */
  async function fingerprint(file) {
    const kind = kindOf(file);
    const out = { name: file.name, kind, md5: await md5Of(file), pdq: null, quality: null, note: null };
    if (kind === "image" || kind === "other") {
      try {
        const started = performance.now();
        const img = await pixelsOf(file);
        const decoded = performance.now();
        const h = await pdqOf(img);
        out.pdq = h.hash;
        out.quality = h.quality;
        out.kind = "image";
        out.timing = { decode_ms: decoded - started, pdq_ms: performance.now() - decoded };
        if (h.quality < MIN_QUALITY) out.note = T.low_quality;
      } catch (err) {
        if (kind === "image") out.note = T.undecodable;
      }
    }
    return out;
  }

  function payloadItems() {
    return items.filter((i) => i.send).map((i) => {
      const o = { md5: i.md5 };
      if (i.pdq && i.quality >= MIN_QUALITY) { o.pdq = i.pdq; o.quality = i.quality; }
      return o;
    });
  }

  function payload() {
    const body = { items: payloadItems() };
    const num = document.getElementById("case-number").value.trim();
    if (num) body.case_number = num;
    return body;
  }

  function render() {
    const table = document.getElementById("items");
    const body = table.querySelector("tbody");
    body.textContent = "";
    items.forEach((item, index) => {
      const tr = document.createElement("tr");
      tr.dataset.md5 = item.md5;
      tr.dataset.pdq = item.pdq || "";
      tr.dataset.quality = item.quality === null ? "" : String(item.quality);
      tr.dataset.name = item.name;
      const send = document.createElement("input");
      send.type = "checkbox";
      send.checked = item.send;
      send.setAttribute("aria-label", T.table_send + ": " + item.name);
      send.addEventListener("change", () => { item.send = send.checked; update(); });
      const cells = [send, item.name, T["kind_" + item.kind] || item.kind, item.md5, item.pdq || T.no_pdq];
      cells.forEach((value, c) => {
        const td = document.createElement("td");
        if (value instanceof Node) td.appendChild(value);
        else if (c >= 3 && (c === 3 || item.pdq)) { const code = document.createElement("code"); code.textContent = value; td.appendChild(code); }
        else td.textContent = value;
        if (c === 4 && item.note) { const p = document.createElement("div"); p.className = "note"; p.textContent = item.note; td.appendChild(p); }
        tr.appendChild(td);
      });
      tr.dataset.index = String(index);
      body.appendChild(tr);
    });
    table.hidden = items.length === 0;
    update();
  }

  function update() {
    document.getElementById("payload").textContent = JSON.stringify(payload(), null, 2);
    document.getElementById("send").disabled = payloadItems().length === 0;
  }

  async function post(path, body) {
    let res;
    try {
      res = await fetch(API + path, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
        credentials: "omit",
        cache: "no-store",
        referrerPolicy: "no-referrer",
      });
    } catch (err) {
      throw new Error(T.error_offline);
    }
    const data = await res.json().catch(() => ({}));
    if (!res.ok) {
      const message = (data.error && data.error.message) || res.statusText;
      throw new Error(format(T.error, { message }));
    }
    return data;
  }

  async function onFiles(event) {
    const files = Array.from(event.target.files || []);
    const progress = document.getElementById("progress");
    progress.textContent = T.hashing;
    for (const file of files) {
      const item = await fingerprint(file);
      item.send = true;
      items.push(item);
      render();
    }
    progress.textContent = "";
    document.body.dataset.hashed = String(items.length);
  }

  async function onSend() {
    const button = document.getElementById("send");
    const result = document.getElementById("result");
    button.disabled = true;
    button.textContent = T.sending;
    try {
      const data = await post("submissions", payload());
      const counts = { added: 0, already: 0, refused: 0 };
      data.items.forEach((r) => {
        if (r.outcome === "added") counts.added++;
        else if (r.outcome === "already-submitted") counts.already++;
        else counts.refused++;
      });
      result.textContent = "";
      const h = document.createElement("h3");
      h.textContent = T.sent_title;
      const num = document.createElement("p");
      num.className = "case-number";
      num.id = "case-result";
      num.textContent = data.case_number;
      const keep = document.createElement("p");
      keep.textContent = T.sent_keep;
      const summary = document.createElement("p");
      summary.textContent = format(T.sent_counts, counts);
      result.append(h, num, keep, summary);
      const sent = items.filter((i) => i.send);
      data.items.forEach((r) => {
        if (r.reason === "allow-listed") {
          const p = document.createElement("p");
          p.textContent = (sent[r.index] ? sent[r.index].name + ": " : "") + T.refused_allow;
          result.appendChild(p);
        }
      });
      result.hidden = false;
      document.getElementById("case-number").value = data.case_number;
      document.getElementById("withdraw-number").value = data.case_number;
      document.body.dataset.submitted = data.case_number;
    } catch (err) {
      result.textContent = err.message;
      result.hidden = false;
    } finally {
      button.textContent = T.send;
      update();
    }
  }

  async function onCase(withdrawing) {
    const out = document.getElementById("withdraw-result");
    const number = document.getElementById("withdraw-number").value.trim();
    if (!number) return;
    if (withdrawing && !window.confirm(T.withdraw_confirm)) return;
    try {
      const data = await post(withdrawing ? "withdraw" : "status", { case_number: number });
      if (withdrawing) out.textContent = format(T.withdrawn_now, { count: data.withdrawn_now });
      else if (data.status === "withdrawn") out.textContent = T.status_withdrawn;
      else out.textContent = format(T.status_active, { items: data.active_items });
      out.dataset.status = data.status;
    } catch (err) {
      out.textContent = err.message;
      out.dataset.status = "error";
    }
  }

  document.getElementById("files").addEventListener("change", onFiles);
  document.getElementById("case-number").addEventListener("input", update);
  document.getElementById("send").addEventListener("click", onSend);
  document.getElementById("check").addEventListener("click", () => onCase(false));
  document.getElementById("withdraw-button").addEventListener("click", () => onCase(true));
  window.ridgelineSubmit = { fingerprint, pixelsOf, pdqOf, md5Of };
  document.body.dataset.ready = "1";
})();
