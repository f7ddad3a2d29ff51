/*
 * PNG decoding that gives exactly the pixels Ridgeline's exact mode hashes.
 *
 * `ridgeline hash` decodes with Pillow and hashes what `.convert("RGB")` gives
 * (ridgeline/pdq/images.py). PNG is lossless, so any correct decoder finds the same
 * samples; what differs is what happens next. The browser's own decoder applies gAMA
 * and colour profiles, scales 16-bit samples and premultiplies alpha in a canvas
 * (pixels with alpha 0 come out black); Pillow does none of that. This decoder
 * inflates with the browser's DecompressionStream and then follows Pillow's rules:
 *
 *   grey 1/2/4 bit   scaled to 0-255 (x255, x85, x17)     grey 16 bit   clipped to 255
 *   RGB(A) 16 bit    the high byte of each sample          alpha         ignored
 *   palette          PLTE colours, black past its end      eXIf          orientation applied
 *
 * The result is {width, height, channels, pixels}: channels 1 (grey, hashed as
 * r = g = b) or 3 (RGB), rows packed. Anything else throws; the page then sends the
 * file's MD5 only.
 */
(function (global) {
  "use strict";

  const SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];
  const ADAM7 = [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2]];
  const SAMPLES = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

  function isPng(bytes) {
    if (bytes.length < 8) return false;
    for (let i = 0; i < 8; i++) if (bytes[i] !== SIGNATURE[i]) return false;
    return true;
  }

  function u32(b, o) { return ((b[o] << 24) >>> 0) + (b[o + 1] << 16) + (b[o + 2] << 8) + b[o + 3]; }

  function chunks(bytes) {
    const out = { idat: [], plte: null, exif: null, header: null };
    let pos = 8;
    while (pos + 8 <= bytes.length) {
      const length = u32(bytes, pos);
      const type = String.fromCharCode(bytes[pos + 4], bytes[pos + 5], bytes[pos + 6], bytes[pos + 7]);
      const body = bytes.subarray(pos + 8, pos + 8 + length);
      if (type === "IHDR") out.header = body;
      else if (type === "PLTE") out.plte = body;
      else if (type === "IDAT") out.idat.push(body);
      else if (type === "eXIf") out.exif = body;
      else if (type === "IEND") break;
      pos += 12 + length;
    }
    if (!out.header || out.header.length < 13) throw new Error("PNG without a header");
    if (!out.idat.length) throw new Error("PNG without pixel data");
    return out;
  }

  async function inflate(parts) {
    const stream = new Blob(parts).stream().pipeThrough(new DecompressionStream("deflate"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }

  /* EXIF orientation (1-8) from an eXIf chunk (a TIFF header and IFD0), as Pillow's
     getexif() reads it; 1 when absent or unreadable. */
  function orientation(exif) {
    if (!exif || exif.length < 8) return 1;
    const little = exif[0] === 0x49 && exif[1] === 0x49;
    if (!little && !(exif[0] === 0x4d && exif[1] === 0x4d)) return 1;
    const u16 = (o) => (little ? exif[o] | (exif[o + 1] << 8) : (exif[o] << 8) | exif[o + 1]);
    const u32e = (o) => (little ? (exif[o] | (exif[o + 1] << 8) | (exif[o + 2] << 16)) + exif[o + 3] * 16777216 : u32(exif, o));
    const ifd = u32e(4);
    if (ifd + 2 > exif.length) return 1;
    const count = u16(ifd);
    for (let i = 0; i < count; i++) {
      const e = ifd + 2 + 12 * i;
      if (e + 12 > exif.length) break;
      if (u16(e) === 0x0112 && u16(e + 2) === 3) {
        const value = u16(e + 8);
        return value >= 1 && value <= 8 ? value : 1;
      }
    }
    return 1;
  }

  function paeth(a, b, c) {
    const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
    return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
  }

  /* Unfilter `height` rows of `stride` bytes starting at data[offset]; returns the rows
     and where the next pass starts. */
  function unfilter(data, offset, stride, height, bpp) {
    const rows = new Uint8Array(stride * height);
    for (let y = 0; y < height; y++) {
      if (offset + 1 + stride > data.length) throw new Error("PNG pixel data ends early");
      const filter = data[offset++];
      const cur = y * stride, prev = cur - stride;
      for (let i = 0; i < stride; i++) {
        const x = data[offset + i];
        const a = i >= bpp ? rows[cur + i - bpp] : 0;
        const b = y > 0 ? rows[prev + i] : 0;
        const c = y > 0 && i >= bpp ? rows[prev + i - bpp] : 0;
        let v;
        if (filter === 0) v = x;
        else if (filter === 1) v = x + a;
        else if (filter === 2) v = x + b;
        else if (filter === 3) v = x + ((a + b) >> 1);
        else if (filter === 4) v = x + paeth(a, b, c);
        else throw new Error("PNG filter type " + filter + " is not valid");
        rows[cur + i] = v & 255;
      }
      offset += stride;
    }
    return [rows, offset];
  }

  function converter(depth, colour, plte) {
    const samples = SAMPLES[colour];
    const channels = colour === 0 || colour === 4 ? 1 : 3;
    const scale = { 1: 255, 2: 85, 4: 17, 8: 1 }[depth];
    // write pixel x of `row` (at byte offset `base`) into out[o...]
    if (depth < 8) {
      const mask = (1 << depth) - 1;
      return [channels, (row, base, x, out, o) => {
        const bit = x * depth;
        const v = (row[base + (bit >> 3)] >> (8 - depth - (bit & 7))) & mask;
        if (colour === 0) out[o] = v * scale;
        else if (plte && 3 * v + 2 < plte.length) { out[o] = plte[3 * v]; out[o + 1] = plte[3 * v + 1]; out[o + 2] = plte[3 * v + 2]; }
        else { out[o] = 0; out[o + 1] = 0; out[o + 2] = 0; }
      }];
    }
    const size = depth / 8;
    if (colour === 3) {
      return [3, (row, base, x, out, o) => {
        const v = row[base + x];
        if (plte && 3 * v + 2 < plte.length) { out[o] = plte[3 * v]; out[o + 1] = plte[3 * v + 1]; out[o + 2] = plte[3 * v + 2]; }
        else { out[o] = 0; out[o + 1] = 0; out[o + 2] = 0; }
      }];
    }
    if (colour === 0 && depth === 16) {
      return [1, (row, base, x, out, o) => {
        const v = (row[base + 2 * x] << 8) | row[base + 2 * x + 1];
        out[o] = v > 255 ? 255 : v;
      }];
    }
    return [channels, (row, base, x, out, o) => {
      const p = base + x * samples * size;
      for (let c = 0; c < channels; c++) out[o + c] = row[p + c * size]; // high byte
    }];
  }

  function orient(img, turn) {
    if (turn === 1) return img;
    const { width: W, height: H, channels: C, pixels: src } = img;
    const swap = turn >= 5;
    const w = swap ? H : W, h = swap ? W : H;
    const out = new Uint8Array(src.length);
    for (let r = 0; r < h; r++) {
      for (let c = 0; c < w; c++) {
        let sr, sc;
        switch (turn) {
          case 2: sr = r; sc = W - 1 - c; break;
          case 3: sr = H - 1 - r; sc = W - 1 - c; break;
          case 4: sr = H - 1 - r; sc = c; break;
          case 5: sr = c; sc = r; break;
          case 6: sr = H - 1 - c; sc = r; break;
          case 7: sr = H - 1 - c; sc = W - 1 - r; break;
          default: sr = c; sc = W - 1 - r; break;
        }
        const s = (sr * W + sc) * C, o = (r * w + c) * C;
        for (let k = 0; k < C; k++) out[o + k] = src[s + k];
      }
    }
    return { width: w, height: h, channels: C, pixels: out };
  }

  async function decodePng(bytes) {
    const parts = chunks(bytes);
    const h = parts.header;
    const width = u32(h, 0), height = u32(h, 4), depth = h[8], colour = h[9], interlace = h[12];
    const samples = SAMPLES[colour];
    if (!samples || ![1, 2, 4, 8, 16].includes(depth)) throw new Error("PNG colour type or depth not valid");
    if (width <= 0 || height <= 0) throw new Error("PNG of no size");
    if (width * height > 178956970) throw new Error("PNG too large");
    const data = await inflate(parts.idat);
    const [channels, put] = converter(depth, colour, parts.plte);
    const pixels = new Uint8Array(width * height * channels);
    const bits = depth * samples, bpp = Math.max(1, bits >> 3);
    let offset = 0;
    const passes = interlace ? ADAM7 : [[0, 0, 1, 1]];
    for (const [x0, y0, dx, dy] of passes) {
      const pw = Math.ceil((width - x0) / dx), ph = Math.ceil((height - y0) / dy);
      if (pw <= 0 || ph <= 0) continue;
      const stride = Math.ceil((pw * bits) / 8);
      let rows;
      [rows, offset] = unfilter(data, offset, stride, ph, bpp);
      for (let j = 0; j < ph; j++) {
        const base = j * stride, y = y0 + j * dy;
        for (let i = 0; i < pw; i++) put(rows, base, i, pixels, (y * width + x0 + i * dx) * channels);
      }
    }
    return orient({ width, height, channels, pixels }, orientation(parts.exif));
  }

  global.RidgelinePng = { isPng, decodePng };
})(typeof self !== "undefined" ? self : this);
