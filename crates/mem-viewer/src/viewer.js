// gpumem memory viewer: reads the allocator dump embedded in this page and
// draws it. Blocks are painted on one canvas per memory type (ranges batched
// by colour), so the page stays fast with 100,000 allocations; hover, pin,
// search and keyboard focus are drawn on a second canvas on top, which is
// cheap to clear and repaint.
(function () {
  'use strict';

  const body = document.body;
  const $ = (id) => document.getElementById(id);

  function fail(message) {
    body.setAttribute('data-error', message);
    const p = $('fatal');
    p.hidden = false;
    p.textContent = 'The report could not be shown: ' + message;
  }
  window.addEventListener('error', (e) => fail(String(e.message || e)));

  // ---------------------------------------------------------------- format

  const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  function fmtBytes(n) {
    n = Number(n) || 0;
    if (Math.abs(n) < 1024) return n + ' B';
    let u = 0;
    while (Math.abs(n) >= 1024 && u < UNITS.length - 1) {
      n /= 1024;
      u++;
    }
    const a = Math.abs(n);
    return (a >= 100 ? n.toFixed(0) : a >= 10 ? n.toFixed(1) : n.toFixed(2)) + ' ' + UNITS[u];
  }
  const fmtInt = (n) => (Number(n) || 0).toLocaleString('en-US');
  const fmtPct = (a, b) => (b > 0 ? ((100 * a) / b).toFixed(1) + '%' : '–');
  const fmtHex = (n) => '0x' + (Number(n) || 0).toString(16);
  function fmtSeconds(s) {
    const a = Math.abs(s);
    if (a === 0) return '0 s';
    if (a < 1e-3) return (s * 1e6).toPrecision(3) + ' µs';
    if (a < 1) return (s * 1e3).toPrecision(3) + ' ms';
    if (a < 120) return s.toPrecision(3) + ' s';
    return (s / 60).toPrecision(3) + ' min';
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function swatch(color) {
    const s = el('span', 'sw');
    s.style.background = color;
    return s;
  }
  function kv(pairs) {
    const dl = el('dl', 'kv');
    for (const [k, v] of pairs) {
      dl.append(el('dt', null, k), el('dd', null, v));
    }
    return dl;
  }

  // ------------------------------------------------------------------ data

  function readJson(id) {
    const s = $(id);
    const text = s ? s.textContent.trim() : '';
    return text ? JSON.parse(text) : null;
  }
  let dump, leaks, timeline;
  try {
    dump = readJson('gpumem-dump');
    leaks = readJson('gpumem-leaks');
    timeline = readJson('gpumem-timeline');
  } catch (e) {
    fail('the embedded JSON does not parse: ' + e.message);
    return;
  }
  if (!dump || typeof dump !== 'object') {
    fail('no allocator dump is embedded');
    return;
  }
  if (!Array.isArray(leaks)) leaks = leaks === null ? null : [];

  const stats = dump.stats || {};
  const total = stats.total || {};
  const heaps = Array.isArray(stats.heaps) ? stats.heaps : [];
  const memoryTypes = Array.isArray(stats.memory_types) ? stats.memory_types : [];
  const detailed = Array.isArray(dump.blocks);

  // Kinds: the first word of a name ("texture #12", "texture:bricks" and
  // "texture bricks" are all "texture"), as the PNG memory map colours them.
  const PALETTE = [
    '#4f9cf0', '#f28e2b', '#5cc46d', '#e8595b', '#b88ae0', '#edc948',
    '#59c7c0', '#ff9da7', '#c29470', '#9fb6cf', '#a4d77b', '#e39ed1',
  ];
  const UNNAMED = '(unnamed)';
  const hex2 = (v) => Math.round(Math.max(0, Math.min(255, v))).toString(16).padStart(2, '0');
  function hslHex(h, s, l) {
    const a = s * Math.min(l, 1 - l);
    const f = (n) => {
      const k = (n + h / 30) % 12;
      return 255 * (l - a * Math.max(-1, Math.min(k - 3, 9 - k, 1)));
    };
    return '#' + hex2(f(0)) + hex2(f(8)) + hex2(f(4));
  }
  // `a` weighted `t`, `b` weighted 1 - t; both #rrggbb.
  function mixHex(a, b, t) {
    const c = (x, i) => parseInt(x.slice(1 + 2 * i, 3 + 2 * i), 16);
    return '#' + [0, 1, 2].map((i) => hex2(c(a, i) * t + c(b, i) * (1 - t))).join('');
  }
  const kinds = [];
  const kindIndex = new Map();
  const KIND_RE = /^[^\s:/.#[]+/;
  function kindOf(name) {
    let k = UNNAMED;
    if (typeof name === 'string' && name.length) {
      const m = KIND_RE.exec(name);
      k = m ? m[0] : name;
    }
    let i = kindIndex.get(k);
    if (i === undefined) {
      i = kinds.length;
      kindIndex.set(k, i);
      kinds.push({ name: k, count: 0, bytes: 0, color: '', dim: '' });
    }
    return i;
  }

  const blocks = [];
  let allocationCount = 0;
  let freeRangeCount = 0;
  (detailed ? dump.blocks : []).forEach((raw, id) => {
    let ranges = Array.isArray(raw.ranges) ? raw.ranges : [];
    for (let i = 1; i < ranges.length; i++) {
      if (ranges[i].offset < ranges[i - 1].offset) {
        ranges = ranges.slice().sort((a, b) => a.offset - b.offset);
        break;
      }
    }
    const n = ranges.length;
    const kind = new Int32Array(n);
    const allocs = [];
    let used = 0;
    let requested = 0;
    let free = 0;
    let largestFree = 0;
    for (let i = 0; i < n; i++) {
      const r = ranges[i];
      r.offset = Number(r.offset) || 0;
      r.size = Number(r.size) || 0;
      if (r.kind === 'Allocated') {
        const k = kindOf(r.name);
        kind[i] = k;
        kinds[k].count++;
        kinds[k].bytes += r.size;
        allocs.push(i);
        used += r.size;
        requested += Number(r.requested) || 0;
      } else {
        kind[i] = -1;
        free += r.size;
        freeRangeCount++;
        if (r.size > largestFree) largestFree = r.size;
      }
    }
    allocationCount += allocs.length;
    blocks.push({
      id,
      type: Number(raw.memory_type_index) || 0,
      cls: String(raw.class || ''),
      dedicated: !!raw.dedicated,
      size: Number(raw.size) || 0,
      ranges,
      kind,
      allocs: Int32Array.from(allocs),
      used,
      requested,
      free,
      largestFree,
      t: null,
      nav: -1,
      place: null,
      option: null,
      match: null,
    });
  });

  // The kinds holding the most bytes get the palette; the rest a hue of
  // their own, from their name.
  kinds
    .slice()
    .sort((a, b) => b.bytes - a.bytes)
    .forEach((k, i) => {
      if (k.name === UNNAMED) {
        k.color = '#5b7a99';
      } else if (i < PALETTE.length) {
        k.color = PALETTE[i];
      } else {
        let h = 2166136261;
        for (let j = 0; j < k.name.length; j++) h = Math.imul(h ^ k.name.charCodeAt(j), 16777619);
        k.color = hslHex((h >>> 0) % 360, 0.55, 0.62);
      }
      k.dim = mixHex(k.color, '#1a1d24', 0.22);
    });

  // Memory types, with their blocks: blocks of the pools first (dump
  // order), then memory of its own, largest first, so rows pack tightly.
  const typeMap = new Map();
  for (const mt of memoryTypes) {
    typeMap.set(Number(mt.memory_type_index), { index: Number(mt.memory_type_index), stats: mt, blocks: [] });
  }
  for (const b of blocks) {
    let t = typeMap.get(b.type);
    if (!t) {
      t = { index: b.type, stats: { memory_type_index: b.type }, blocks: [] };
      typeMap.set(b.type, t);
    }
    t.blocks.push(b);
  }
  const types = [...typeMap.values()].sort((a, b) => a.index - b.index);
  const nav = [];
  for (const t of types) {
    t.blocks.sort((a, b) => a.dedicated - b.dedicated || (a.dedicated ? b.size - a.size || a.id - b.id : a.id - b.id));
    for (const b of t.blocks) {
      b.t = t;
      b.nav = nav.length;
      nav.push(b);
    }
  }

  // Counts for tests and tools, set as soon as the dump is read.
  body.dataset.blocks = String(blocks.length);
  body.dataset.allocations = String(allocationCount);
  body.dataset.freeRanges = String(freeRangeCount);
  body.dataset.heaps = String(heaps.length);
  body.dataset.memoryTypes = String(memoryTypes.length);
  body.dataset.leaks = leaks === null ? 'unknown' : String(leaks.length);
  body.dataset.timelineSamples = String(timeline && Array.isArray(timeline.samples) ? timeline.samples.length : 0);

  // --------------------------------------------------------------- summary

  function summary() {
    const p = $('summary');
    p.textContent = '';
    // Each figure stays on one line when the summary wraps.
    const add = (strong, rest) => {
      if (p.childNodes.length) p.append(' · ');
      const item = el('span', 'item');
      item.append(el('b', null, strong), rest);
      p.append(item);
    };
    const own = blocks.filter((b) => b.dedicated).length;
    if (detailed) {
      add(fmtInt(blocks.length) + ' blocks', ' (' + fmtInt(blocks.length - own) + ' pooled, ' + fmtInt(own) + ' of their own)');
      add(fmtInt(allocationCount) + ' allocations', '');
    } else {
      add(fmtInt(total.block_count) + ' blocks', ' + ' + fmtInt(total.dedicated_count) + ' of their own');
      add(fmtInt(total.allocation_count) + ' allocations', ' (a summary dump: Allocator::dump_json(true) adds the block maps)');
    }
    add(fmtBytes(total.committed_bytes), ' committed');
    add(fmtBytes(total.requested_bytes), ' requested');
    add(((Number(total.efficiency) || 0) * 100).toFixed(1) + '%', ' efficient');
    let cachedBytes = 0;
    let cachedCount = 0;
    for (const mt of memoryTypes) {
      cachedBytes += Number(mt.cached_bytes) || 0;
      cachedCount += Number(mt.cached_count) || 0;
    }
    add(fmtInt(cachedCount) + ' cached', ' (' + fmtBytes(cachedBytes) + ')');
    if (leaks === null) add('no leak report', '');
    else add(fmtInt(leaks.length) + (leaks.length === 1 ? ' leak' : ' leaks'), '');
    if (Number(total.corruptions_detected) > 0) add(fmtInt(total.corruptions_detected) + ' corrupted margins', '');
  }

  function downloadLink() {
    const a = $('download');
    try {
      const blob = new Blob([$('gpumem-dump').textContent], { type: 'application/json' });
      a.href = URL.createObjectURL(blob);
      a.hidden = false;
    } catch (e) {
      a.hidden = true;
    }
  }

  // ----------------------------------------------------------------- heaps

  function bar(parts, markers) {
    const b = el('div', 'bar');
    let left = 0;
    for (const [frac, color, title] of parts) {
      const f = Math.max(0, Math.min(1 - left, frac));
      if (f <= 0) continue;
      const s = el('span', 'seg');
      s.style.left = (left * 100).toFixed(3) + '%';
      s.style.width = 'max(2px, ' + (f * 100).toFixed(3) + '%)';
      s.style.background = color;
      s.title = title;
      b.append(s);
      left += f;
    }
    for (const [frac, title] of markers || []) {
      const m = el('span', 'marker');
      m.style.left = 'calc(' + (Math.min(1, Math.max(0, frac)) * 100).toFixed(3) + '% - 1px)';
      m.title = title;
      b.append(m);
    }
    return b;
  }
  function barLegend(items) {
    const d = el('div', 'bar-legend');
    for (const [color, text] of items) {
      const s = el('span');
      if (color) s.append(swatch(color));
      s.append(text);
      d.append(s);
    }
    return d;
  }

  // Summary bars use muted tones, so that a saturated colour always means
  // a kind of allocation.
  const C_COMMITTED = '#7f9cc9';
  const C_PROCESS = '#4d5877';
  const C_REQUESTED = '#8db996';
  const C_ROUNDING = '#52785b';
  const C_UNUSED = '#5a6272';
  const C_OWN = '#a394c4';
  const C_CACHE = '#c7a25e';
  const C_FREE = '#2f323b';
  const C_LIVE = '#f0a35a';

  function renderHeaps() {
    const list = $('heap-list');
    if (!heaps.length) {
      list.append(el('p', 'muted', 'The dump lists no heap.'));
      return;
    }
    for (const h of heaps) {
      const size = Number(h.size) || 0;
      const committed = Number(h.committed_bytes) || 0;
      const budget = h.budget == null ? null : Number(h.budget);
      const usage = h.driver_usage == null ? null : Number(h.driver_usage);
      const scale = Math.max(size, budget || 0, usage || 0, committed, 1);
      const d = el('div', 'heap');
      const head = el('div', 'heap-head');
      head.append(el('h3', null, 'Heap ' + h.heap_index), el('span', 'muted', (h.flags || 'no flags') + ' · ' + fmtBytes(size)));
      head.append(
        el(
          'span',
          'muted',
          fmtInt(h.block_count) + ' blocks + ' + fmtInt(h.dedicated_count) + ' of their own · ' + fmtInt(h.allocation_count) + ' allocations',
        ),
      );
      d.append(head);
      const parts = [[committed / scale, C_COMMITTED, 'committed by this allocator: ' + fmtBytes(committed)]];
      if (usage !== null && usage > committed) parts.push([(usage - committed) / scale, C_PROCESS, 'the rest of the process: ' + fmtBytes(usage - committed)]);
      const markers = budget !== null ? [[budget / scale, 'budget: ' + fmtBytes(budget)]] : [];
      d.append(bar(parts, markers));
      const legend = [[C_COMMITTED, 'committed ' + fmtBytes(committed) + (budget ? ' (' + fmtPct(committed, budget) + ' of budget)' : ' (' + fmtPct(committed, size) + ' of the heap)')]];
      if (usage !== null) legend.push([C_PROCESS, 'process usage ' + fmtBytes(usage)]);
      legend.push(['#ffd84a', budget !== null ? 'budget ' + fmtBytes(budget) : 'no budget (VK_EXT_memory_budget off)']);
      d.append(barLegend(legend));
      // What the committed bytes hold.
      const req = Number(h.requested_bytes) || 0;
      const alloc = Math.max(req, Number(h.allocated_bytes) || 0);
      const c = Math.max(committed, alloc, 1);
      d.append(
        bar([
          [req / c, C_REQUESTED, 'requested: ' + fmtBytes(req)],
          [(alloc - req) / c, C_ROUNDING, 'rounding: ' + fmtBytes(alloc - req)],
          [(committed - alloc) / c, C_UNUSED, 'committed, not handed out: ' + fmtBytes(committed - alloc)],
        ]),
      );
      d.append(
        barLegend([
          [C_REQUESTED, 'requested ' + fmtBytes(req) + ' (' + fmtPct(req, committed) + ')'],
          [C_ROUNDING, 'rounding ' + fmtBytes(alloc - req)],
          [C_UNUSED, 'free in blocks and cached ' + fmtBytes(Math.max(0, committed - alloc))],
        ]),
      );
      list.append(d);
    }
  }

  // ---------------------------------------------------------------- canvas

  // Canvas text follows the page's font size (larger on very wide screens).
  // `ui` is the page's font size over its default of 14 px, updated at
  // each layout; canvas text and the space around it scale by it.
  let ui = 1;
  function font(size, weight) {
    return (weight ? weight + ' ' : '') + Math.round(size * ui) + 'px system-ui, sans-serif';
  }

  function sizeCanvas(c, w, h) {
    const dpr = window.devicePixelRatio || 1;
    c.style.width = w + 'px';
    c.style.height = h + 'px';
    const W = Math.max(1, Math.round(w * dpr));
    const H = Math.max(1, Math.round(h * dpr));
    if (c.width !== W) c.width = W;
    if (c.height !== H) c.height = H;
    const ctx = c.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    return ctx;
  }
  function innerWidth(e) {
    const cs = getComputedStyle(e);
    return Math.max(120, Math.floor(e.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight)));
  }

  // Index of the range holding `offset` (the last starting at or before it).
  function rangeAt(b, offset) {
    const r = b.ranges;
    let lo = 0;
    let hi = r.length - 1;
    if (hi < 0) return -1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (r[mid].offset <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }
  // In a pixel's worth of bytes [lo, hi), the range to show: the largest
  // allocation there, else the free range under the pointer.
  function pickRange(b, offset, halfSpan) {
    const at = rangeAt(b, offset);
    if (at < 0) return -1;
    let best = -1;
    let i = rangeAt(b, offset - halfSpan);
    for (; i < b.ranges.length && b.ranges[i].offset < offset + halfSpan; i++) {
      if (b.kind[i] >= 0 && (best < 0 || b.ranges[i].size > b.ranges[best].size)) best = i;
    }
    return best >= 0 ? best : at;
  }

  const search = { query: '', active: false, matches: [], bytes: 0, next: 0 };
  const isMatch = (b, i) => !search.active || (b.match !== null && b.match[i] === 1);

  // Draws block `b`'s bytes [lo, hi) into the rectangle (x, y, w, h): free
  // space, allocations by kind (dimmed when a search does not match them),
  // the bytes kept beyond the request darker, and a separator at each
  // allocation's start where there is room. Ranges are batched by colour.
  function paintRanges(ctx, b, lo, hi, x, y, w, h, labels) {
    ctx.fillStyle = C_FREE;
    ctx.fillRect(x, y, w, h);
    if (hi <= lo) return;
    const s = w / (hi - lo);
    const paths = new Map();
    const tails = new Path2D();
    const seps = new Path2D();
    const texts = [];
    const ranges = b.ranges;
    for (let i = Math.max(0, rangeAt(b, lo)); i < ranges.length; i++) {
      const r = ranges[i];
      if (r.offset >= hi) break;
      const k = b.kind[i];
      if (k < 0) continue;
      const a = Math.max(r.offset, lo);
      const e = Math.min(r.offset + r.size, hi);
      if (e <= a) continue;
      const x0 = x + (a - lo) * s;
      const rw = (e - a) * s;
      const kind = kinds[k];
      const color = isMatch(b, i) ? kind.color : kind.dim;
      let p = paths.get(color);
      if (!p) paths.set(color, (p = new Path2D()));
      p.rect(x0, y, rw, h);
      const req = Number(r.requested) || 0;
      const tailStart = Math.max(r.offset + req, lo);
      if (req < r.size && (e - tailStart) * s >= 1) tails.rect(x + (tailStart - lo) * s, y, (e - tailStart) * s, h);
      if (rw >= 4 && r.offset >= lo) seps.rect(x0, y, 1, h);
      if (labels && rw >= 44) texts.push([x0, rw, r.name == null ? UNNAMED : String(r.name)]);
    }
    for (const [color, p] of paths) {
      ctx.fillStyle = color;
      ctx.fill(p);
    }
    ctx.fillStyle = 'rgba(0,0,0,0.38)';
    ctx.fill(tails);
    ctx.fillStyle = 'rgba(0,0,0,0.6)';
    ctx.fill(seps);
    if (texts.length) {
      ctx.save();
      ctx.font = font(11, 600);
      ctx.textBaseline = 'middle';
      ctx.fillStyle = '#0b0d11';
      for (const [tx, tw, name] of texts) {
        ctx.save();
        ctx.beginPath();
        ctx.rect(tx + 3, y, tw - 6, h);
        ctx.clip();
        ctx.fillText(name, tx + 4, y + h / 2);
        ctx.restore();
      }
      ctx.restore();
    }
  }

  // ---------------------------------------------------------- memory types

  // Rows of the maps, in CSS pixels: a pooled block's row is taller than
  // one of memory of its own (one allocation each, nothing inside to see).
  const ROW_H = 24;
  const OWN_ROW_H = 14;
  const MARK_H = 3;
  const ROW_GAP = 6;
  const LABEL_H = 18;
  const BLOCK_GAP = 6;
  const MIN_BLOCK_W = 4;

  function renderTypes() {
    const list = $('type-list');
    const quiet = [];
    for (const t of types) {
      const st = t.stats;
      const committed = Number(st.committed_bytes) || 0;
      if (!t.blocks.length && committed === 0 && !(Number(st.cached_bytes) > 0)) {
        quiet.push(t);
        continue;
      }
      const sec = el('section', 'card mtype');
      sec.id = 'type-' + t.index;
      t.section = sec;
      const head = el('div', 'mtype-head');
      head.append(el('h3', null, 'Type ' + t.index), el('span', 'muted', 'heap ' + (st.heap_index ?? '?') + ' · ' + (st.flags || 'no flags')));
      sec.append(head);
      const pooled = t.blocks.filter((b) => !b.dedicated);
      const own = t.blocks.filter((b) => b.dedicated);
      const nums = [
        fmtBytes(committed) + ' committed',
        fmtInt(st.block_count ?? pooled.length) + ' blocks + ' + fmtInt(st.dedicated_count ?? own.length) + ' of their own',
        fmtInt(st.allocation_count) + ' allocations',
        fmtBytes(st.requested_bytes) + ' requested',
        'largest free ' + fmtBytes(st.largest_free_block),
        fmtBytes(st.host_metadata_bytes) + ' host metadata',
      ];
      sec.append(el('div', 'mtype-nums', nums.join(' · ')));
      // Committed bytes by what holds them.
      const cached = Number(st.cached_bytes) || 0;
      let parts;
      let legend;
      if (detailed) {
        const used = pooled.reduce((a, b) => a + b.used, 0);
        const free = pooled.reduce((a, b) => a + b.free, 0);
        const ownBytes = own.reduce((a, b) => a + b.size, 0);
        const rest = Math.max(0, committed - used - free - ownBytes - cached);
        const c = Math.max(committed, used + free + ownBytes + cached, 1);
        parts = [
          [used / c, C_COMMITTED, 'allocations in blocks'],
          [free / c, '#4a4f5c', 'free in blocks'],
          [ownBytes / c, C_OWN, 'memory of its own'],
          [cached / c, C_CACHE, 'cache'],
          [rest / c, C_UNUSED, 'being created or freed'],
        ];
        legend = [
          [C_COMMITTED, 'in blocks, allocated ' + fmtBytes(used)],
          ['#4a4f5c', 'free ' + fmtBytes(free)],
          [C_OWN, 'memory of its own ' + fmtBytes(ownBytes) + ' (' + fmtInt(own.length) + ')'],
          [C_CACHE, 'cache ' + fmtBytes(cached) + ' (' + fmtInt(st.cached_count) + ' objects, committed, unused)'],
        ];
        if (rest > 0) legend.push([C_UNUSED, 'in flight ' + fmtBytes(rest)]);
      } else {
        const alloc = Number(st.allocated_bytes) || 0;
        const c = Math.max(committed, 1);
        parts = [
          [alloc / c, C_COMMITTED, 'allocated'],
          [cached / c, C_CACHE, 'cache'],
        ];
        legend = [
          [C_COMMITTED, 'allocated ' + fmtBytes(alloc)],
          [C_CACHE, 'cache ' + fmtBytes(cached) + ' (' + fmtInt(st.cached_count) + ' objects)'],
          [C_FREE, 'free in blocks ' + fmtBytes(Math.max(0, committed - alloc - cached))],
        ];
      }
      sec.append(bar(parts), barLegend(legend));
      if (t.blocks.length) {
        const wrap = el('div', 'map-wrap');
        wrap.tabIndex = 0;
        wrap.setAttribute('role', 'application');
        wrap.setAttribute(
          'aria-label',
          'Memory type ' + t.index + ': ' + t.blocks.length + ' blocks. Arrow keys move between allocations and blocks, Enter pins.',
        );
        const base = el('canvas', 'base');
        const overlay = el('canvas', 'overlay');
        wrap.append(base, overlay);
        t.wrap = wrap;
        t.base = base;
        t.overlay = overlay;
        sec.append(wrap);
        t.scaleLine = el('div', 'scale');
        sec.append(t.scaleLine);
        wrap.addEventListener('mousemove', (e) => onMapHover(t, e));
        wrap.addEventListener('mouseleave', () => setHover(null));
        wrap.addEventListener('click', (e) => onMapClick(t, e));
        wrap.addEventListener('keydown', onNavKey);
        wrap.addEventListener('focus', () => {
          if (!cursor || cursor.b.t !== t) setCursor(firstCursor(t.blocks[0]), false);
        });
      } else if (detailed) {
        sec.append(el('p', 'muted', 'No block: only cached memory objects.'));
      }
      const hist = histogramOf(t);
      if (hist.length) {
        const hw = el('div', 'hist-wrap');
        hw.append(el('div', 'hist-title', 'Free ranges by size (count)'));
        const c = el('canvas');
        c.setAttribute('role', 'img');
        c.setAttribute('aria-label', 'Histogram of free ranges: ' + hist.map(([s, n]) => n + ' of ' + fmtBytes(s)).join(', '));
        hw.append(c);
        t.hist = c;
        t.histData = hist;
        sec.append(hw);
      }
      list.append(sec);
    }
    if (quiet.length) {
      const p = el('p', 'quiet-types');
      p.textContent =
        'Nothing allocated in ' + quiet.map((t) => 'type ' + t.index + ' (heap ' + (t.stats.heap_index ?? '?') + ', ' + (t.stats.flags || 'no flags') + ')').join(', ') + '.';
      list.append(p);
    }
    if (!types.length) list.append(el('p', 'muted', 'The dump lists no memory type.'));
  }

  // Free ranges of a memory type by size: the allocator's histogram when it
  // has one, else counted from the block maps in power-of-two bins.
  function histogramOf(t) {
    const h = t.stats.free_block_histogram;
    let pairs = h && typeof h === 'object' ? Object.entries(h).map(([k, v]) => [Number(k), Number(v) || 0]) : [];
    if (!pairs.length && t.blocks.length) {
      const bins = new Map();
      for (const b of t.blocks) {
        for (let i = 0; i < b.ranges.length; i++) {
          if (b.kind[i] >= 0) continue;
          const s = b.ranges[i].size;
          const bin = s > 0 ? Math.pow(2, Math.floor(Math.log2(s))) : 0;
          bins.set(bin, (bins.get(bin) || 0) + 1);
        }
      }
      pairs = [...bins.entries()];
    }
    return pairs.filter(([, n]) => n > 0).sort((a, b) => a[0] - b[0]);
  }

  function layoutType(t) {
    const width = innerWidth(t.section);
    let max = 1;
    for (const b of t.blocks) if (b.size > max) max = b.size;
    const bpp = max / width;
    const pooled = t.blocks.filter((b) => !b.dedicated).length;
    const own = t.blocks.length - pooled;
    t.labels = [];
    let x = 0;
    let y = 0;
    let rowH = 0;
    let prevOwn = null;
    for (const b of t.blocks) {
      const w = Math.min(width, Math.max(MIN_BLOCK_W, b.size / bpp));
      const h = b.dedicated ? OWN_ROW_H : ROW_H;
      if (b.dedicated !== prevOwn) {
        // A new group: its label, then its first row.
        if (prevOwn !== null) y += rowH + ROW_GAP;
        t.labels.push([
          y + Math.round(LABEL_H * ui) - 5,
          b.dedicated
            ? 'Memory of its own: ' + fmtInt(own) + (own === 1 ? ' allocation' : ' allocations, largest first')
            : 'Pooled blocks: ' + fmtInt(pooled),
        ]);
        y += Math.round(LABEL_H * ui) + MARK_H + 2;
        x = 0;
      } else if (x + w > width + 0.5) {
        x = 0;
        y += rowH + ROW_GAP + MARK_H + 2;
      }
      b.place = { x, y, w, h };
      rowH = h;
      x += w + BLOCK_GAP;
      prevOwn = b.dedicated;
    }
    t.width = width;
    t.height = y + rowH + 8;
    t.bpp = bpp;
    t.scaleLine.textContent =
      'To scale: the widest block is ' +
      fmtBytes(max) +
      ', 1 pixel ≈ ' +
      fmtBytes(Math.round(bpp)) +
      ' (blocks at least ' +
      MIN_BLOCK_W +
      ' px wide). Darker: bytes kept beyond the request; grey: free.';
  }

  function drawType(t) {
    const ctx = sizeCanvas(t.base, t.width, t.height);
    sizeCanvas(t.overlay, t.width, t.height);
    ctx.font = font(12);
    ctx.fillStyle = '#9ba2af';
    ctx.textBaseline = 'alphabetic';
    for (const [y, text] of t.labels) ctx.fillText(text, 0, y);
    for (const b of t.blocks) {
      const p = b.place;
      paintRanges(ctx, b, 0, b.size, p.x, p.y, p.w, p.h, false);
    }
    if (search.active) {
      // Matches are marked above their block, at least 2 px wide, so that
      // even sub-pixel allocations can be found.
      ctx.fillStyle = '#ffd84a';
      for (const b of t.blocks) {
        if (!b.match) continue;
        const p = b.place;
        const s = p.w / (b.size || 1);
        for (let i = 0; i < b.ranges.length; i++) {
          if (b.match[i] !== 1) continue;
          const r = b.ranges[i];
          const w = Math.max(2, r.size * s);
          ctx.fillRect(Math.min(p.x + p.w - w, p.x + r.offset * s), p.y - MARK_H - 2, w, MARK_H);
        }
      }
    }
    drawOverlay(t);
  }

  function rangeRect(b, i) {
    const p = b.place;
    const r = b.ranges[i];
    const s = p.w / (b.size || 1);
    let x = p.x + r.offset * s;
    let w = r.size * s;
    if (w < 3) {
      x -= (3 - w) / 2;
      w = 3;
    }
    return { x, y: p.y, w, h: p.h };
  }

  function drawOverlay(t) {
    if (!t || !t.overlay) return;
    const ctx = t.overlay.getContext('2d');
    const dpr = window.devicePixelRatio || 1;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, t.width, t.height);
    if (hover && hover.b.t === t && hover.r >= 0 && !(cursor && cursor.b === hover.b && cursor.r === hover.r)) {
      const q = rangeRect(hover.b, hover.r);
      ctx.strokeStyle = 'rgba(255,255,255,0.85)';
      ctx.lineWidth = 1;
      ctx.strokeRect(q.x + 0.5, q.y - 0.5, Math.max(1, q.w - 1), q.h + 1);
    }
    if (cursor && cursor.b.t === t) {
      const b = cursor.b;
      const p = b.place;
      ctx.strokeStyle = 'rgba(124,192,255,0.55)';
      ctx.lineWidth = 1;
      ctx.strokeRect(p.x - 1.5, p.y - 1.5, p.w + 3, p.h + 3);
      if (cursor.r >= 0) {
        const q = rangeRect(b, cursor.r);
        ctx.strokeStyle = pinned ? '#ffd84a' : '#ffffff';
        ctx.lineWidth = 2;
        ctx.strokeRect(q.x, q.y - 1, q.w, q.h + 2);
        // A notch under the allocation finds it even when it is thin.
        ctx.fillStyle = ctx.strokeStyle;
        const cx = q.x + q.w / 2;
        ctx.beginPath();
        ctx.moveTo(cx, p.y + p.h + 1);
        ctx.lineTo(cx - 4, p.y + p.h + 6);
        ctx.lineTo(cx + 4, p.y + p.h + 6);
        ctx.closePath();
        ctx.fill();
      }
    }
  }

  function hitBlock(t, x, y) {
    for (const b of t.blocks) {
      const p = b.place;
      if (x >= p.x && x < p.x + p.w && y >= p.y - MARK_H - 2 && y < p.y + p.h + 3) return b;
    }
    return null;
  }
  function mapPoint(t, e) {
    const rect = t.wrap.getBoundingClientRect();
    const x = e.clientX - rect.left;
    const y = e.clientY - rect.top;
    const b = hitBlock(t, x, y);
    if (!b) return null;
    const p = b.place;
    const bytesPerPx = (b.size || 1) / p.w;
    const offset = (x - p.x) * bytesPerPx;
    return { b, r: pickRange(b, offset, bytesPerPx / 2) };
  }
  function onMapHover(t, e) {
    const hit = mapPoint(t, e);
    setHover(hit && hit.r >= 0 ? hit : null, e);
  }
  function onMapClick(t, e) {
    const hit = mapPoint(t, e);
    if (hit && hit.r >= 0 && hit.b.kind[hit.r] >= 0) {
      const same = cursor && cursor.b === hit.b && cursor.r === hit.r;
      pinned = !(same && pinned);
      setCursor(hit, false);
    } else if (hit) {
      pinned = false;
      setCursor({ b: hit.b, r: nearestAlloc(hit.b, hit.r >= 0 ? hit.b.ranges[hit.r].offset : 0) }, false);
    } else {
      pinned = false;
      refresh();
    }
  }

  // -------------------------------------------------------------- selection

  let cursor = null; // { b, r }: the keyboard's and the pin's allocation (r = -1: an empty block)
  let hover = null; // { b, r }: under the pointer (r may be a free range)
  let pinned = false;
  let zoomFactor = 1;

  function nearestAlloc(b, offset) {
    const a = b.allocs;
    if (!a.length) return -1;
    let lo = 0;
    let hi = a.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (b.ranges[a[mid]].offset <= offset) lo = mid;
      else hi = mid - 1;
    }
    if (lo + 1 < a.length) {
      const d0 = Math.abs(offset - b.ranges[a[lo]].offset);
      const d1 = Math.abs(b.ranges[a[lo + 1]].offset - offset);
      if (d1 < d0) return a[lo + 1];
    }
    return a[lo];
  }
  function allocPos(b, r) {
    const a = b.allocs;
    let lo = 0;
    let hi = a.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (a[mid] < r) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
  function firstCursor(b) {
    return { b, r: b.allocs.length ? b.allocs[0] : -1 };
  }

  function setHover(h, e) {
    const old = hover;
    if (old && h && old.b === h.b && old.r === h.r) {
      // Same range: only the tooltip follows the pointer.
      tooltip(h, e);
      return;
    }
    hover = h;
    if (old && old.b.t) drawOverlay(old.b.t);
    if (h && h.b.t && (!old || old.b.t !== h.b.t)) drawOverlay(h.b.t);
    if (!pinned) renderDetails();
    tooltip(h, e);
  }

  function setCursor(c, fromKeyboard) {
    const old = cursor;
    cursor = c;
    if (fromKeyboard) hover = null;
    if (old && old.b.t && (!c || old.b.t !== c.b.t)) drawOverlay(old.b.t);
    if (c && c.b.t) drawOverlay(c.b.t);
    if (!old || !c || old.b !== c.b) selectOption(c ? c.b : null);
    renderDetails();
    if (fromKeyboard) {
      tooltip(null);
      revealCursor();
    }
  }
  function refresh() {
    for (const t of types) drawOverlay(t);
    renderDetails();
  }

  function revealCursor() {
    if (!cursor || !cursor.b.t || !cursor.b.t.wrap) return;
    const rect = cursor.b.t.wrap.getBoundingClientRect();
    const p = cursor.b.place;
    const top = rect.top + p.y - 40;
    const bottom = rect.top + p.y + p.h + 40;
    if (top < 0) window.scrollBy(0, top);
    else if (bottom > window.innerHeight) window.scrollBy(0, bottom - window.innerHeight);
  }

  function moveAlloc(step) {
    if (!cursor) return setCursor(nav.length ? firstCursor(nav[0]) : null, true);
    let b = cursor.b;
    let pos = cursor.r >= 0 ? allocPos(b, cursor.r) + step : step > 0 ? 0 : b.allocs.length - 1;
    while (pos < 0 || pos >= b.allocs.length) {
      const nb = nav[b.nav + (step > 0 ? 1 : -1)];
      if (!nb) return;
      b = nb;
      pos = step > 0 ? 0 : b.allocs.length - 1;
    }
    setCursor({ b, r: b.allocs[pos] }, true);
  }
  function moveBlock(step) {
    if (!cursor) return setCursor(nav.length ? firstCursor(nav[0]) : null, true);
    const b = cursor.b;
    const nb = nav[Math.max(0, Math.min(nav.length - 1, b.nav + step))];
    if (!nb || nb === b) return;
    // Keep the position along the block: the allocation nearest the same
    // fraction of the new block.
    const frac = cursor.r >= 0 ? b.ranges[cursor.r].offset / (b.size || 1) : 0;
    setCursor({ b: nb, r: nearestAlloc(nb, frac * nb.size) }, true);
  }

  function onNavKey(e) {
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    switch (e.key) {
      case 'ArrowRight':
        moveAlloc(1);
        break;
      case 'ArrowLeft':
        moveAlloc(-1);
        break;
      case 'ArrowDown':
        moveBlock(1);
        break;
      case 'ArrowUp':
        moveBlock(-1);
        break;
      case 'PageDown':
        moveBlock(10);
        break;
      case 'PageUp':
        moveBlock(-10);
        break;
      case 'Home':
        if (cursor) setCursor(firstCursor(cursor.b), true);
        break;
      case 'End':
        if (cursor) setCursor({ b: cursor.b, r: cursor.b.allocs.length ? cursor.b.allocs[cursor.b.allocs.length - 1] : -1 }, true);
        break;
      case 'Enter':
      case ' ':
        if (!cursor) moveAlloc(1);
        pinned = !pinned;
        refresh();
        break;
      case 'Escape':
        pinned = false;
        refresh();
        break;
      case '+':
      case '=':
        zoomFactor = Math.max(1 / 256, zoomFactor / 2);
        drawZoom();
        break;
      case '-':
      case '_':
        zoomFactor = Math.min(1 << 20, zoomFactor * 2);
        drawZoom();
        break;
      default:
        return;
    }
    e.preventDefault();
  }

  // --------------------------------------------------------------- details

  function resourceOf(b, r) {
    if (r && r.resource) return String(r.resource);
    if (b.dedicated) return 'a buffer or image alone in its memory';
    if (b.cls.startsWith('optimal')) return 'optimal-tiling image (pool kept apart for bufferImageGranularity)';
    if (b.cls.startsWith('linear')) return 'buffer or linear image (pool kept apart for bufferImageGranularity)';
    return 'buffer or image';
  }
  function blockTitle(b) {
    return 'block #' + b.id + ' · type ' + b.type + ' · ' + b.cls + ' · ' + fmtBytes(b.size);
  }
  function rangeFacts(b, i) {
    const r = b.ranges[i];
    const facts = [];
    if (b.kind[i] >= 0) {
      const req = Number(r.requested) || 0;
      facts.push(['kind', kinds[b.kind[i]].name]);
      facts.push(['size', fmtBytes(req) + ' requested' + (r.size !== req ? ', ' + fmtBytes(r.size) + ' kept' : '')]);
    } else {
      facts.push(['free', fmtBytes(r.size)]);
    }
    facts.push(['offset', fmtHex(r.offset) + ' (' + fmtBytes(r.offset) + ')']);
    facts.push(['end', fmtHex(r.offset + r.size)]);
    facts.push(['class', b.cls + (b.dedicated ? ' (memory of its own)' : '')]);
    if (b.kind[i] >= 0) facts.push(['resource', resourceOf(b, r)]);
    facts.push(['block', '#' + b.id + ', ' + fmtBytes(b.size) + ', memory type ' + b.type]);
    return facts;
  }

  function renderDetails() {
    const d = $('detail-body');
    d.textContent = '';
    const shown = !pinned && hover ? hover : cursor;
    if (!shown) {
      d.append(el('p', 'muted', detailed ? 'No allocation.' : 'A summary dump has no block maps to show.'));
      drawZoom();
      return;
    }
    const b = shown.b;
    const i = shown.r;
    const title = el('div');
    if (i >= 0 && b.kind[i] >= 0) {
      const r = b.ranges[i];
      title.append(swatch(kinds[b.kind[i]].color), el('span', 'name', r.name == null ? UNNAMED : String(r.name)));
      if (pinned && shown === cursor) title.append(el('span', 'pin', 'pinned'));
      d.append(title);
      const facts = rangeFacts(b, i);
      const pos = allocPos(b, i);
      facts.push(['in block', 'allocation ' + fmtInt(pos + 1) + ' of ' + fmtInt(b.allocs.length)]);
      const before = i > 0 && b.kind[i - 1] < 0 ? fmtBytes(b.ranges[i - 1].size) : 'none';
      const after = i + 1 < b.ranges.length && b.kind[i + 1] < 0 ? fmtBytes(b.ranges[i + 1].size) : 'none';
      facts.push(['free around', before + ' before, ' + after + ' after']);
      d.append(kv(facts));
    } else if (i >= 0) {
      title.append(swatch(C_FREE), el('span', 'name', 'Free range'));
      d.append(title, kv(rangeFacts(b, i)));
    } else {
      title.append(el('span', 'name', 'Empty block #' + b.id));
      d.append(title, kv([['block', blockTitle(b)], ['state', 'no allocation (kept for reuse)']]));
    }
    drawZoom();
  }

  function tooltip(h, e) {
    const tip = $('tooltip');
    if (!h || !e || h.r < 0) {
      tip.hidden = true;
      return;
    }
    const b = h.b;
    const r = b.ranges[h.r];
    tip.textContent = '';
    const name = b.kind[h.r] >= 0 ? (r.name == null ? UNNAMED : String(r.name)) : 'Free range';
    tip.append(el('div', 'name', name), kv(rangeFacts(b, h.r)));
    tip.hidden = false;
    const pad = 14;
    const w = tip.offsetWidth;
    const hgt = tip.offsetHeight;
    let x = e.clientX + pad;
    let y = e.clientY + pad;
    if (x + w > window.innerWidth - 4) x = Math.max(4, e.clientX - pad - w);
    if (y + hgt > window.innerHeight - 4) y = Math.max(4, e.clientY - pad - hgt);
    tip.style.left = x + 'px';
    tip.style.top = y + 'px';
  }

  // The block of the cursor, whole (top) and magnified around the
  // cursor's allocation (bottom); + and − or the wheel change the zoom.
  const zoomState = { lo: 0, hi: 0, b: null, w: 0 };
  let ZOOM_TOP = 18;
  let ZOOM_TOP_H = 14;
  let ZOOM_Y = 52;
  let ZOOM_H = 34;
  function drawZoom() {
    ZOOM_TOP = Math.round(18 * ui);
    ZOOM_TOP_H = Math.round(14 * ui);
    ZOOM_Y = Math.round(52 * ui);
    ZOOM_H = Math.round(34 * ui);
    const c = $('zoom');
    const w = innerWidth(c.parentElement);
    const ctx = sizeCanvas(c, w, ZOOM_Y + ZOOM_H + Math.round(18 * ui));
    const b = cursor ? cursor.b : null;
    zoomState.b = b;
    zoomState.w = w;
    ctx.font = font(11);
    ctx.textBaseline = 'alphabetic';
    if (!b) {
      ctx.fillStyle = '#9ba2af';
      ctx.fillText('No block selected', 0, Math.round(14 * ui));
      return;
    }
    ctx.fillStyle = '#9ba2af';
    ctx.fillText(blockTitle(b), 0, Math.round(12 * ui));
    paintRanges(ctx, b, 0, b.size, 0, ZOOM_TOP, w, ZOOM_TOP_H, false);
    let lo = 0;
    let hi = b.size;
    if (cursor.r >= 0) {
      const r = b.ranges[cursor.r];
      const span = Math.min(b.size, Math.max(64, r.size * 24 * zoomFactor));
      lo = Math.max(0, Math.min(b.size - span, r.offset + r.size / 2 - span / 2));
      hi = lo + span;
    }
    zoomState.lo = lo;
    zoomState.hi = hi;
    const s = w / (b.size || 1);
    const bx0 = lo * s;
    const bx1 = Math.max(bx0 + 2, hi * s);
    ctx.strokeStyle = '#ffd84a';
    ctx.lineWidth = 1.5;
    ctx.strokeRect(bx0, ZOOM_TOP - 2, bx1 - bx0, ZOOM_TOP_H + 4);
    ctx.fillStyle = 'rgba(255,216,74,0.12)';
    ctx.beginPath();
    ctx.moveTo(bx0, ZOOM_TOP + ZOOM_TOP_H + 2);
    ctx.lineTo(bx1, ZOOM_TOP + ZOOM_TOP_H + 2);
    ctx.lineTo(w, ZOOM_Y);
    ctx.lineTo(0, ZOOM_Y);
    ctx.closePath();
    ctx.fill();
    paintRanges(ctx, b, lo, hi, 0, ZOOM_Y, w, ZOOM_H, true);
    if (cursor.r >= 0) {
      const r = b.ranges[cursor.r];
      const zs = w / (hi - lo);
      let x = (r.offset - lo) * zs;
      let rw = r.size * zs;
      if (rw < 3) {
        x -= (3 - rw) / 2;
        rw = 3;
      }
      ctx.strokeStyle = pinned ? '#ffd84a' : '#ffffff';
      ctx.lineWidth = 2;
      ctx.strokeRect(x, ZOOM_Y - 1, rw, ZOOM_H + 2);
    }
    ctx.fillStyle = '#9ba2af';
    ctx.textBaseline = 'top';
    ctx.fillText(fmtHex(Math.round(lo)), 0, ZOOM_Y + ZOOM_H + 4);
    const label = fmtHex(Math.round(hi)) + '  (' + fmtBytes(Math.round(hi - lo)) + ' shown)';
    ctx.fillText(label, w - ctx.measureText(label).width, ZOOM_Y + ZOOM_H + 4);
  }
  function zoomPoint(e) {
    const b = zoomState.b;
    if (!b) return null;
    const rect = $('zoom').getBoundingClientRect();
    const x = e.clientX - rect.left;
    const y = e.clientY - rect.top;
    if (y >= ZOOM_Y - 2 && y <= ZOOM_Y + ZOOM_H + 2) {
      const bpp = (zoomState.hi - zoomState.lo) / zoomState.w;
      return { b, r: pickRange(b, zoomState.lo + x * bpp, bpp / 2) };
    }
    if (y >= ZOOM_TOP - 2 && y <= ZOOM_TOP + ZOOM_TOP_H + 2) {
      const bpp = (b.size || 1) / zoomState.w;
      return { b, r: pickRange(b, x * bpp, bpp / 2) };
    }
    return null;
  }

  // ---------------------------------------------------------------- blocks

  function renderBlockList() {
    const list = $('blocklist');
    if (!nav.length) {
      list.append(el('p', 'muted', detailed ? 'No block.' : 'A summary dump has no block maps.'));
      return;
    }
    const frag = document.createDocumentFragment();
    let lastType = null;
    for (const b of nav) {
      if (b.t !== lastType) {
        lastType = b.t;
        frag.append(el('div', 'bl-group', 'Type ' + b.t.index + ' · ' + (b.t.stats.flags || 'no flags')));
      }
      const o = el('div', 'bl-item');
      o.id = 'block-' + b.id;
      o.setAttribute('role', 'option');
      o.setAttribute('aria-selected', 'false');
      o.dataset.nav = String(b.nav);
      o.append(
        el('span', null, '#' + b.id + ' ' + b.cls + ' · ' + fmtInt(b.allocs.length) + (b.allocs.length === 1 ? ' allocation' : ' allocations')),
        el('span', 'muted', fmtBytes(b.size) + ' · ' + fmtPct(b.used, b.size)),
      );
      const u = el('span', 'u');
      const fill = el('i');
      fill.style.width = (b.size ? (100 * b.used) / b.size : 0).toFixed(2) + '%';
      u.append(fill);
      o.append(u);
      b.option = o;
      frag.append(o);
    }
    list.append(frag);
    list.addEventListener('click', (e) => {
      const o = e.target.closest('.bl-item');
      if (!o) return;
      const b = nav[Number(o.dataset.nav)];
      setCursor(firstCursor(b), true);
    });
    list.addEventListener('keydown', onNavKey);
    list.addEventListener('focus', () => {
      if (!cursor && nav.length) setCursor(firstCursor(nav[0]), true);
    });
  }
  function selectOption(b) {
    const list = $('blocklist');
    const old = list.querySelector('[aria-selected="true"]');
    if (old) old.setAttribute('aria-selected', 'false');
    if (b && b.option) {
      b.option.setAttribute('aria-selected', 'true');
      list.setAttribute('aria-activedescendant', b.option.id);
      // Scroll the list only, never the page.
      const top = b.option.offsetTop - list.offsetTop;
      if (top < list.scrollTop + 24) list.scrollTop = Math.max(0, top - 24);
      else if (top + b.option.offsetHeight > list.scrollTop + list.clientHeight) list.scrollTop = top + b.option.offsetHeight - list.clientHeight;
    }
  }

  // ---------------------------------------------------------------- legend

  function renderLegend() {
    const legend = $('legend');
    const sorted = kinds.slice().sort((a, b) => b.bytes - a.bytes);
    if (!sorted.length) {
      legend.append(el('p', 'muted', 'No allocation.'));
      return;
    }
    for (const k of sorted) {
      const btn = el('button', 'kind');
      btn.type = 'button';
      btn.title = 'Search for ' + k.name;
      btn.append(swatch(k.color), el('span', 'k', k.name), el('span', 'c', fmtInt(k.count)), el('span', 'b', fmtBytes(k.bytes)));
      btn.addEventListener('click', () => {
        const input = $('search');
        input.value = k.name === UNNAMED ? '' : k.name;
        applySearch(input.value);
      });
      legend.append(btn);
    }
  }

  // ---------------------------------------------------------------- search

  function applySearch(query) {
    const q = String(query || '').trim().toLowerCase();
    search.query = q;
    search.active = q.length > 0;
    search.matches = [];
    search.bytes = 0;
    search.next = 0;
    for (const b of blocks) {
      b.match = null;
      if (!search.active) continue;
      let any = false;
      const m = new Uint8Array(b.ranges.length);
      for (const i of b.allocs) {
        const name = b.ranges[i].name;
        if (typeof name === 'string' && name.toLowerCase().includes(q)) {
          m[i] = 1;
          any = true;
          search.matches.push({ b, r: i });
          search.bytes += b.ranges[i].size;
        }
      }
      if (any) b.match = m;
      if (b.option) b.option.classList.toggle('hit', any);
    }
    if (!search.active) for (const b of blocks) if (b.option) b.option.classList.remove('hit');
    search.matches.sort((x, y) => x.b.nav - y.b.nav || x.r - y.r);
    body.dataset.matches = String(search.matches.length);
    $('matches').textContent = search.active
      ? fmtInt(search.matches.length) + (search.matches.length === 1 ? ' match, ' : ' matches, ') + fmtBytes(search.bytes) + (search.matches.length ? ' · Enter: next' : '')
      : '';
    for (const t of types) if (t.base) drawType(t);
    drawZoom();
  }
  function jumpMatch(step) {
    const m = search.matches;
    if (!m.length) return;
    search.next = (((search.next + step) % m.length) + m.length) % m.length;
    setCursor(m[search.next], true);
  }
  function setupSearch() {
    const input = $('search');
    let timer = 0;
    input.addEventListener('input', () => {
      clearTimeout(timer);
      timer = setTimeout(() => applySearch(input.value), 120);
    });
    input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') {
        clearTimeout(timer);
        if (search.query !== input.value.trim().toLowerCase()) {
          applySearch(input.value);
          search.next = -1;
        }
        jumpMatch(e.shiftKey ? -1 : 1);
        e.preventDefault();
      } else if (e.key === 'Escape') {
        input.value = '';
        applySearch('');
      }
    });
    document.addEventListener('keydown', (e) => {
      const tag = document.activeElement ? document.activeElement.tagName : '';
      if (e.key === '/' && tag !== 'INPUT' && tag !== 'TEXTAREA') {
        input.focus();
        input.select();
        e.preventDefault();
      }
    });
    const m = /(?:^#|&)search=([^&]*)/.exec(location.hash);
    if (m) {
      // A link to a search opens on its first match.
      input.value = decodeURIComponent(m[1].replace(/\+/g, ' '));
      applySearch(input.value);
      if (search.matches.length) setCursor(search.matches[0], false);
    }
  }

  // ----------------------------------------------------------------- leaks

  function renderLeaks() {
    const d = $('leak-list');
    if (leaks === null) {
      d.append(el('p', 'muted', 'This report carries no leak report (ReportOptions::leaks takes Allocator::leak_report()).'));
      return;
    }
    if (!leaks.length) {
      d.append(el('p', 'ok', 'The leak report lists no allocation: everything was freed.'));
      return;
    }
    let bytes = 0;
    for (const l of leaks) bytes += Number(l && l.size) || 0;
    d.append(el('p', 'bad', fmtInt(leaks.length) + ' allocations still alive, ' + fmtBytes(bytes) + ':'));
    const table = el('table');
    const head = el('tr');
    for (const [h, cls] of [['name', ''], ['size', 'r'], ['memory type', 'r'], ['offset', 'r'], ['memory', '']]) head.append(el('th', cls, h));
    table.append(head);
    const LIMIT = 1000;
    for (const l of leaks.slice(0, LIMIT)) {
      const tr = el('tr');
      tr.append(
        el('td', null, l && l.name != null ? String(l.name) : UNNAMED),
        el('td', 'r', fmtBytes(l && l.size)),
        el('td', 'r', l && l.memory_type_index != null ? l.memory_type_index : '?'),
        el('td', 'r', fmtHex(l && l.offset)),
        el('td', null, l && l.dedicated ? 'of its own' : 'in a block'),
      );
      table.append(tr);
    }
    d.append(table);
    if (leaks.length > LIMIT) d.append(el('p', 'muted', '… and ' + fmtInt(leaks.length - LIMIT) + ' more in the embedded JSON.'));
  }

  // -------------------------------------------------------------- timeline

  function niceStep(span, target, base) {
    const raw = span / Math.max(1, target);
    const mag = Math.pow(base, Math.floor(Math.log(raw) / Math.log(base)));
    for (const f of [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]) if (mag * f >= raw) return mag * f;
    return mag * 1000;
  }
  function byteStep(max, target) {
    let unit = 1;
    while (max / unit >= 1024 && unit < Math.pow(1024, 5)) unit *= 1024;
    return unit * niceStep(max / unit, target, 10);
  }
  const tl = { samples: [], marks: [], hoverIndex: -1 };
  function drawTimeline() {
    const s = tl.samples;
    const c = $('timeline-canvas');
    const w = innerWidth($('timeline'));
    const h = Math.round(160 * ui);
    const ctx = sizeCanvas(c, w, h);
    const L = Math.round(72 * ui);
    const R = 12;
    const T = Math.round(22 * ui);
    const B = Math.round(22 * ui);
    // The time axis spans the samples and the marks.
    let t0 = s[0][0];
    let t1 = s[s.length - 1][0];
    for (const [t] of tl.marks) {
      t0 = Math.min(t0, t);
      t1 = Math.max(t1, t);
    }
    t1 = Math.max(t1, t0 + 1e-9);
    let max = 1;
    for (const [, a, b] of s) max = Math.max(max, a, b);
    const yStep = byteStep(max, 4);
    const yMax = Math.ceil((max * 1.04) / yStep) * yStep;
    const X = (t) => L + ((t - t0) / (t1 - t0)) * (w - L - R);
    const Y = (v) => T + (1 - v / yMax) * (h - T - B);
    ctx.font = font(11);
    ctx.lineWidth = 1;
    ctx.textBaseline = 'middle';
    for (let v = 0; v <= yMax + 1e-6; v += yStep) {
      ctx.strokeStyle = '#2b2f39';
      ctx.beginPath();
      ctx.moveTo(L, Math.round(Y(v)) + 0.5);
      ctx.lineTo(w - R, Math.round(Y(v)) + 0.5);
      ctx.stroke();
      ctx.fillStyle = '#9ba2af';
      const label = fmtBytes(v);
      ctx.fillText(label, L - 8 - ctx.measureText(label).width, Y(v));
    }
    ctx.textBaseline = 'top';
    const xStep = niceStep(t1 - t0, 6, 10);
    for (let t = Math.ceil(t0 / xStep) * xStep; t <= t1 + 1e-12; t += xStep) {
      const label = fmtSeconds(t);
      const x = X(t);
      ctx.fillStyle = '#9ba2af';
      ctx.fillText(label, Math.min(w - R - ctx.measureText(label).width, Math.max(L, x - ctx.measureText(label).width / 2)), h - B + 6);
      ctx.strokeStyle = '#2b2f39';
      ctx.beginPath();
      ctx.moveTo(Math.round(x) + 0.5, h - B);
      ctx.lineTo(Math.round(x) + 0.5, h - B + 4);
      ctx.stroke();
    }
    // Committed as a filled step area, live as a line over it.
    const area = new Path2D();
    area.moveTo(X(s[0][0]), Y(0));
    const committed = new Path2D();
    const live = new Path2D();
    s.forEach(([t, a, b], i) => {
      if (i === 0) {
        area.lineTo(X(t), Y(a));
        committed.moveTo(X(t), Y(a));
        live.moveTo(X(t), Y(b));
      } else {
        area.lineTo(X(t), Y(s[i - 1][1]));
        area.lineTo(X(t), Y(a));
        committed.lineTo(X(t), Y(s[i - 1][1]));
        committed.lineTo(X(t), Y(a));
        live.lineTo(X(t), Y(s[i - 1][2]));
        live.lineTo(X(t), Y(b));
      }
    });
    area.lineTo(X(s[s.length - 1][0]), Y(0));
    area.closePath();
    ctx.fillStyle = 'rgba(127,156,201,0.22)';
    ctx.fill(area);
    ctx.lineWidth = 2;
    ctx.strokeStyle = C_COMMITTED;
    ctx.stroke(committed);
    ctx.strokeStyle = C_LIVE;
    ctx.stroke(live);
    // Legend.
    ctx.textBaseline = 'middle';
    ctx.font = font(12);
    let lx = L;
    for (const [color, text] of [[C_COMMITTED, 'committed (VkDeviceMemory)'], [C_LIVE, 'live (held by allocations)']]) {
      ctx.fillStyle = color;
      ctx.fillRect(lx, Math.round(8 * ui) - 2, 14, 3);
      ctx.fillStyle = '#e6e8ee';
      ctx.fillText(text, lx + 20, Math.round(8 * ui));
      lx += 34 + ctx.measureText(text).width;
    }
    // Marks: a dashed line and its label, staggered when they crowd.
    ctx.font = font(11);
    ctx.textBaseline = 'top';
    const lineH = Math.round(13 * ui);
    const rowEnds = new Array(Math.max(2, Math.floor((h - T - B - 4) / lineH))).fill(-Infinity);
    for (const [t, label] of tl.marks) {
      if (t < t0 || t > t1) continue;
      const x = Math.round(X(t)) + 0.5;
      ctx.strokeStyle = 'rgba(255,216,74,0.55)';
      ctx.lineWidth = 1;
      ctx.setLineDash([3, 3]);
      ctx.beginPath();
      ctx.moveTo(x, T);
      ctx.lineTo(x, h - B);
      ctx.stroke();
      ctx.setLineDash([]);
      const lw = ctx.measureText(label).width;
      const lx = Math.min(w - R - lw, x + 3);
      // The first label row with room, else the least crowded.
      let row = rowEnds.findIndex((end) => end + 6 <= lx);
      if (row < 0) row = rowEnds.indexOf(Math.min(...rowEnds));
      const ly = T + 2 + row * lineH;
      ctx.fillStyle = 'rgba(26,29,36,0.85)';
      ctx.fillRect(lx - 1, ly - 1, lw + 2, lineH);
      ctx.fillStyle = '#ffd84a';
      ctx.fillText(label, lx, ly);
      rowEnds[row] = lx + lw;
    }
    ctx.font = font(12);
    ctx.textBaseline = 'middle';
    const i = tl.hoverIndex;
    if (i >= 0 && i < s.length) {
      const x = X(s[i][0]);
      ctx.strokeStyle = 'rgba(255,255,255,0.5)';
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.moveTo(Math.round(x) + 0.5, T);
      ctx.lineTo(Math.round(x) + 0.5, h - B);
      ctx.stroke();
      const text = fmtSeconds(s[i][0]) + ': committed ' + fmtBytes(s[i][1]) + ', live ' + fmtBytes(s[i][2]);
      const tw = ctx.measureText(text).width;
      const tx = Math.min(w - R - tw - 8, Math.max(L, x + 8));
      ctx.fillStyle = 'rgba(11,13,17,0.92)';
      ctx.fillRect(tx - 4, T + 2, tw + 8, Math.round(20 * ui));
      ctx.fillStyle = '#e6e8ee';
      ctx.fillText(text, tx, T + Math.round(12 * ui));
    }
    tl.X0 = L;
    tl.X1 = w - R;
    tl.t0 = t0;
    tl.t1 = t1;
  }
  function setupTimeline() {
    if (!timeline || !Array.isArray(timeline.samples) || !timeline.samples.length) return;
    tl.samples = timeline.samples.filter((s) => Array.isArray(s) && s.length >= 3).map((s) => [Number(s[0]) || 0, Number(s[1]) || 0, Number(s[2]) || 0]);
    if (!tl.samples.length) return;
    if (Array.isArray(timeline.marks)) {
      tl.marks = timeline.marks.filter((m) => Array.isArray(m) && m.length >= 2).map((m) => [Number(m[0]) || 0, String(m[1])]);
    }
    $('timeline').hidden = false;
    const c = $('timeline-canvas');
    c.addEventListener('mousemove', (e) => {
      const rect = c.getBoundingClientRect();
      const t = tl.t0 + ((e.clientX - rect.left - tl.X0) / (tl.X1 - tl.X0)) * (tl.t1 - tl.t0);
      let lo = 0;
      let hi = tl.samples.length - 1;
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (tl.samples[mid][0] <= t) lo = mid;
        else hi = mid - 1;
      }
      tl.hoverIndex = lo;
      drawTimeline();
    });
    c.addEventListener('mouseleave', () => {
      tl.hoverIndex = -1;
      drawTimeline();
    });
  }

  // ------------------------------------------------------------ histograms

  function drawHistogram(t) {
    const data = t.histData;
    const w = innerWidth(t.section);
    const h = Math.round(92 * ui);
    const ctx = sizeCanvas(t.hist, w, h);
    const B = Math.round(16 * ui);
    let max = 1;
    for (const [, n] of data) max = Math.max(max, n);
    const slot = Math.min(w / data.length, 84 * ui);
    const bw = Math.max(2, Math.min(48, slot - 4));
    ctx.font = font(10);
    ctx.textBaseline = 'top';
    const every = Math.max(1, Math.ceil((56 * ui) / slot));
    data.forEach(([size, n], i) => {
      const bh = Math.max(1, (n / max) * (h - B - Math.round(14 * ui)));
      const x = i * slot + (slot - bw) / 2;
      ctx.fillStyle = '#6f7890';
      ctx.fillRect(x, h - B - bh, bw, bh);
      ctx.fillStyle = '#c9ced8';
      const label = fmtInt(n);
      const lw = ctx.measureText(label).width;
      if (lw <= slot + 2) ctx.fillText(label, x + bw / 2 - lw / 2, h - B - bh - Math.round(12 * ui));
      if (i % every === 0) {
        const sl = fmtBytes(size).replace(' ', '');
        ctx.fillStyle = '#9ba2af';
        ctx.fillText(sl, x + bw / 2 - ctx.measureText(sl).width / 2, h - B + 3);
      }
    });
  }

  // ---------------------------------------------------------------- layout

  function layoutAll() {
    ui = (parseFloat(getComputedStyle(document.documentElement).fontSize) || 14) / 14;
    for (const t of types) {
      if (t.base) {
        layoutType(t);
        drawType(t);
      }
      if (t.hist) drawHistogram(t);
    }
    if (tl.samples.length) drawTimeline();
    drawZoom();
  }

  summary();
  downloadLink();
  renderHeaps();
  setupTimeline();
  renderTypes();
  renderLegend();
  renderBlockList();
  renderLeaks();
  if (nav.length) cursor = firstCursor(nav[0]);
  layoutAll();
  selectOption(cursor ? cursor.b : null);
  renderDetails();
  setupSearch();

  const zoom = $('zoom');
  zoom.addEventListener('mousemove', (e) => {
    const hit = zoomPoint(e);
    tooltip(hit && hit.r >= 0 ? hit : null, e);
  });
  zoom.addEventListener('mouseleave', () => tooltip(null));
  zoom.addEventListener('click', (e) => {
    const hit = zoomPoint(e);
    if (hit && hit.r >= 0 && hit.b.kind[hit.r] >= 0) {
      pinned = true;
      setCursor(hit, false);
    }
  });
  zoom.addEventListener(
    'wheel',
    (e) => {
      zoomFactor = Math.max(1 / 256, Math.min(1 << 20, zoomFactor * (e.deltaY < 0 ? 0.5 : 2)));
      drawZoom();
      e.preventDefault();
    },
    { passive: false },
  );
  zoom.addEventListener('keydown', onNavKey);

  // Re-lay out when the width or the pixel ratio changes (window resize,
  // moving the window to a screen of another density, browser zoom).
  let pending = 0;
  let lastWidth = $('content').clientWidth;
  let lastRatio = window.devicePixelRatio || 1;
  function relayout() {
    pending = 0;
    const w = $('content').clientWidth;
    const r = window.devicePixelRatio || 1;
    if (w === lastWidth && r === lastRatio) return;
    lastWidth = w;
    lastRatio = r;
    layoutAll();
  }
  const schedule = () => {
    if (!pending) pending = requestAnimationFrame(relayout);
  };
  if (window.ResizeObserver) new ResizeObserver(schedule).observe($('content'));
  window.addEventListener('resize', schedule);

  body.dataset.ready = '1';
})();
