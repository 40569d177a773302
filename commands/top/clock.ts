// The remote sampler's clock. Deno's timers fire no sooner than ~1-2 ms (setTimeout(fn, 1)
// runs ~430 times a second here, setTimeout(fn, 0) as often), which held `top -i 1ms` to
// 45% of its samples. So the loop sleeps in Atomics.wait (sub-millisecond, no busy wait) and
// lets the event loop run between samples through a MessageChannel (~10 µs a turn), which
// delivers the agent's frames and Ctrl-C without a timer.

const MAX_SLEEP_MS = 20; // the event loop is never held longer than this

/** Ticks at absolute deadlines: a late tick is counted as missed, never made up in a burst. */
export class Ticker {
  /** Deadlines that have passed, taken or missed (the samples asked for). */
  asked = 0;
  private next: number;
  private cell = new Int32Array(new SharedArrayBuffer(4));
  private channel = new MessageChannel();

  constructor(readonly intervalMs: number, readonly started = performance.now()) {
    this.next = started + intervalMs;
  }

  /** Whether a deadline has passed (asked then counts it and any missed since). */
  due(now: number): boolean {
    if (now < this.next) return false;
    const late = Math.floor((now - this.next) / this.intervalMs);
    this.asked += 1 + late;
    this.next += (1 + late) * this.intervalMs;
    return true;
  }

  /** Sleeps until the next deadline or `until`, whichever is first (at most MAX_SLEEP_MS). */
  sleep(until: number): void {
    const ms = Math.min(this.next, until) - performance.now();
    if (ms > 0) Atomics.wait(this.cell, 0, 0, Math.min(ms, MAX_SLEEP_MS));
  }

  /** One turn of the event loop (I/O, signals), without a timer's delay. */
  yieldToEvents(): Promise<void> {
    return new Promise((resolve) => {
      this.channel.port1.onmessage = () => resolve();
      this.channel.port2.postMessage(null);
    });
  }

  close(): void {
    this.channel.port1.close();
    this.channel.port2.close();
  }
}
