/**
 * What the adaptive batch window knows about a model version's traffic, from what it observed:
 * the mean interval between arrivals, and a line fitted to run time against batch rows
 * (`time = fixed + perRow * rows`). Both forget the past exponentially, so they follow the load.
 */
const ARRIVAL_WEIGHT = 0.05;
const RUN_DECAY = 0.95;
/** Runs observed before the fit is trusted. */
const WARM_UP_RUNS = 16;

export class BatchCostModel {
  private interval?: number;
  private arrival?: number;
  private runs = 0;
  // Exponentially decayed sums of the least-squares fit.
  private w = 0;
  private x = 0;
  private y = 0;
  private xx = 0;
  private xy = 0;

  recordArrival(at: number): void {
    if (this.arrival !== undefined) {
      const gap = at - this.arrival;
      this.interval = this.interval === undefined ? gap : this.interval + ARRIVAL_WEIGHT * (gap - this.interval);
    }
    this.arrival = at;
  }

  recordRun(rows: number, durationMs: number): void {
    this.runs++;
    this.w = this.w * RUN_DECAY + 1;
    this.x = this.x * RUN_DECAY + rows;
    this.y = this.y * RUN_DECAY + durationMs;
    this.xx = this.xx * RUN_DECAY + rows * rows;
    this.xy = this.xy * RUN_DECAY + rows * durationMs;
  }

  get lastArrival(): number {
    return this.arrival ?? 0;
  }

  get meanArrivalIntervalMs(): number | undefined {
    return this.interval;
  }

  /**
   * The part of a run that does not grow with its rows (dispatch, round trip, kernel launches): what
   * merging one more request saves. Undefined until the runs seen so far vary enough to tell.
   */
  get fixedCostMs(): number | undefined {
    if (this.runs < WARM_UP_RUNS) return undefined;
    const meanX = this.x / this.w;
    const meanY = this.y / this.w;
    const varianceX = this.xx / this.w - meanX * meanX;
    if (varianceX < 1e-6) return undefined;
    const perRow = (this.xy / this.w - meanX * meanY) / varianceX;
    return Math.max(0, meanY - perRow * meanX);
  }
}
