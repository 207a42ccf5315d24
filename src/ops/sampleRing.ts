/**
 * A fixed number of slots: once full, each push overwrites the oldest item,
 * so however long the service runs the ring holds `capacity` items at most.
 */
export class SampleRing<T> {
  private readonly slots: (T | undefined)[];
  /** Where the next push goes. */
  private head = 0;
  private count = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`ring capacity must be a positive integer, not ${capacity}`);
    this.slots = new Array<T | undefined>(capacity).fill(undefined);
  }

  get length(): number {
    return this.count;
  }

  push(item: T): void {
    this.slots[this.head] = item;
    this.head = (this.head + 1) % this.capacity;
    this.count = Math.min(this.count + 1, this.capacity);
  }

  /** The items, oldest first. */
  toArray(): T[] {
    const start = (this.head - this.count + this.capacity) % this.capacity;
    return Array.from({ length: this.count }, (_, offset) => this.slots[(start + offset) % this.capacity] as T);
  }
}
