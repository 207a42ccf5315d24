/** One image file as it arrived, already on disk in the temp store. */
export interface ReceivedFile {
  readonly index: number;
  /** The client's filename: metadata only, never a path. */
  readonly originalName: string | null;
  readonly bytes: number;
  /** The file's first bytes, for sniffing its format. */
  readonly head: Buffer;
  /** Settles once the file is durable (see `TempStore.writeInput`). */
  readonly synced: Promise<void>;
  /** SHA-256 of its bytes, hex, when the receiver was asked to hash them. */
  readonly sha256: string | null;
}

/** What a submission's body held, whichever form it came in. */
export interface ReceivedUpload {
  readonly files: readonly ReceivedFile[];
  /** Options before validation: parsed JSON (multipart) or the query string (raw body). */
  readonly options: unknown;
}
