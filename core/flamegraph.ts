// Flame graphs from collapsed stacks ("thread;outer (file:1);inner (file:2)" → samples):
// an SVG a browser opens (hover a frame for its samples), a speedscope JSON file, or the
// folded text itself (Brendan Gregg's format, read by flamegraph.pl, speedscope, Grafana).

export type Collapsed = [string, number][];

interface Node {
  name: string;
  value: number;
  children: Map<string, Node>;
}

function buildTree(stacks: Collapsed): Node {
  const root: Node = { name: "all", value: 0, children: new Map() };
  for (const [stack, count] of stacks) {
    root.value += count;
    let node = root;
    for (const frame of stack.split(";")) {
      let child = node.children.get(frame);
      if (!child) node.children.set(frame, child = { name: frame, value: 0, children: new Map() });
      child.value += count;
      node = child;
    }
  }
  return root;
}

const escapeXml = (s: string) =>
  s.replace(
    /[<>&"']/g,
    (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;", "'": "&apos;" })[c]!,
  );

/** Warm colours, stable per function name (the same function has the same colour everywhere). */
function colour(name: string): string {
  let h = 0;
  for (const c of name) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return `rgb(${205 + (h % 50)},${(h >> 8) % 180 + 40},${(h >> 16) % 55})`;
}

const WIDTH = 1200, ROW = 17, PAD = 10, FONT = 12, CHAR = 7;

/** A flame graph: the root at the bottom, each frame as wide as its share of the samples. */
export function flameGraphSvg(stacks: Collapsed, title: string): string {
  const root = buildTree(stacks);
  const total = Math.max(1, root.value);
  const depthOf = (n: Node): number => 1 + Math.max(0, ...[...n.children.values()].map(depthOf));
  const depth = depthOf(root);
  const height = depth * ROW + 3 * PAD + FONT * 2;
  const scale = (WIDTH - 2 * PAD) / total;
  const rects: string[] = [];
  const draw = (n: Node, x: number, level: number) => {
    const w = n.value * scale;
    if (w < 0.3) return; // too thin to see
    const y = height - PAD - (level + 1) * ROW;
    const pct = ((100 * n.value) / total).toFixed(2);
    const label = w > 3 * CHAR ? n.name.slice(0, Math.floor(w / CHAR) - 1) : "";
    rects.push(
      `<g><title>${escapeXml(n.name)} (${n.value} samples, ${pct}%)</title>` +
        `<rect x="${x.toFixed(2)}" y="${y}" width="${w.toFixed(2)}" height="${ROW - 1}" ` +
        `fill="${colour(n.name)}" rx="2"/>` +
        (label
          ? `<text x="${(x + 3).toFixed(2)}" y="${y + ROW - 5}">${escapeXml(label)}</text>`
          : "") +
        `</g>`,
    );
    let cx = x;
    for (const c of [...n.children.values()].sort((a, b) => a.name.localeCompare(b.name))) {
      draw(c, cx, level + 1);
      cx += c.value * scale;
    }
  };
  draw(root, PAD, 0);
  return `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="monospace" font-size="${FONT}">
<rect width="100%" height="100%" fill="#fdfdf5"/>
<text x="${WIDTH / 2}" y="${PAD + FONT}" text-anchor="middle" font-size="${FONT + 3}">${
    escapeXml(title)
  }</text>
${rects.join("\n")}
</svg>
`;
}

/** The speedscope file format (https://www.speedscope.app), one sampled profile. */
export function speedscopeJson(stacks: Collapsed, name: string): string {
  const frames: { name: string; file?: string; line?: number }[] = [];
  const index = new Map<string, number>();
  const frameId = (label: string) => {
    let i = index.get(label);
    if (i === undefined) {
      const m = /^(.*) \((.*):(\d+)\)$/.exec(label);
      frames.push(m ? { name: m[1], file: m[2], line: Number(m[3]) } : { name: label });
      index.set(label, i = frames.length - 1);
    }
    return i;
  };
  const samples = stacks.map(([stack]) => stack.split(";").map(frameId));
  const weights = stacks.map(([, n]) => n);
  const total = weights.reduce((a, b) => a + b, 0);
  return JSON.stringify({
    $schema: "https://www.speedscope.app/file-format-schema.json",
    shared: { frames },
    profiles: [{
      type: "sampled",
      name,
      unit: "none",
      startValue: 0,
      endValue: total,
      samples,
      weights,
    }],
    name,
    activeProfileIndex: 0,
    exporter: "peeka",
  });
}

/** Folded stacks: one "root;...;leaf count" line per stack (the count after the last space). */
export function foldedText(stacks: Collapsed): string {
  return stacks.map(([stack, count]) => `${stack} ${count}\n`).join("");
}
