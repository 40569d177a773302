// An example plugin on peeka's instrumented-command base: `peeka count shop.add -i 1s` prints,
// every interval, how many calls the function got (calls/s). Its snippet is snippet.py beside
// this file. The pattern, -n, --condition and --strict are the built-ins' own options.
import * as peeka from "peeka";

const interval = { flags: "-i, --interval <time>", description: "e.g. 1s, 500ms", default: "1s" };
const seconds = (o: peeka.Options) => peeka.positive(peeka.parseDuration(o.interval, "s"), "-i");
const line = (o: Record<string, unknown>) => `${peeka.clock(o.timestamp)}  ${o.per_second} calls/s`;

export default peeka.defineCommand({
  name: "count",
  summary: "How many calls a function gets per second, every interval",
  arguments: [peeka.PATTERN_ARGUMENT],
  options: [interval, peeka.timesOption("intervals"), peeka.conditionOption(), peeka.STRICT_OPTION],
  libs: ["instrument", "condition", "observe"],
  streaming: true,
  request: (o, a) => ({ interval: seconds(o), ...peeka.observedRequest(o, a, "interval") }),
  onFrame: (frame, ctx) => peeka.printFrame(frame, ctx, line),
});
