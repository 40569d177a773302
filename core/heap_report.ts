// What the commands that walk the heap (memory, inspect) say the same way.

/** How many of peeka's own objects the walk left out (the agent library heap's `Ours`), as a
 * line; none when it left none out. */
export function oursLeftOut(d: Record<string, unknown>): string[] {
  if (!d.peeka_objects_left_out) return [];
  const cap = d.peeka_cap_reached ? ` (cap of ${d.peeka_cap} reached: some may be counted)` : "";
  return [`${d.peeka_objects_left_out} of peeka's own objects left out${cap}`];
}
