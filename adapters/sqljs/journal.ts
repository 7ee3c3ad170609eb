/**
 * The journal's byte format: a header, then the appends (the transactions one group-commit
 * flush writes), each as one or more frames.
 *
 * ```
 * header (16 bytes): "TCJL" | format u32 | generation u32 | crc32(first 12 bytes) u32
 * frame (20 bytes +): length u32 | crc32(the rest) u32 | generation u32 | index u32 | count u32 | payload
 * payload:           UTF-8 JSON array of row changes (see `db.ts`), in transaction order
 * ```
 *
 * Integers are little-endian. A frame belongs to the snapshot of the same generation.
 * `index` and `count` place a frame in its append: an append of `count` frames is replayed
 * whole or not at all. A frame's payload is at most `maxFrameBytes` (unless one row's change
 * alone is larger), so each frame's text stays far below what a runtime holds as one string
 * however much one flush writes.
 *
 * A frame is written whole or, after a crash, torn: reading stops at the first frame that
 * is incomplete or fails its checksum, and drops the append it belongs to, whole. A crash of
 * the machine may keep any of the pages of an append that was not synced, in any order:
 * damage anywhere in the last append is a torn tail, whichever of its frames it hit, and
 * its frames that survived are dropped with it (their calls never resolved). Damage
 * followed by a good frame that starts another append is not a torn tail but corruption,
 * and is reported as such.
 *
 * Format 1 had 12-byte frame headers (no index and count) and one frame per append; it
 * is read as such, and the storage starts a journal of the current format at open.
 *
 * @module
 */

import { StorageCorruptError, StorageVersionError } from "../../src/errors.ts";

/** The journal format this code writes (it reads this one and the ones before). */
export const JOURNAL_FORMAT = 2;
/** Size of the journal header in bytes. */
export const HEADER_BYTES = 16;
/** Size of a frame's header in bytes (format 2). */
export const FRAME_HEADER_BYTES = 20;
/** Size of a frame's header in format 1 (no index and count). */
const FRAME_HEADER_V1 = 12;
/**
 * The most payload bytes one frame holds by default: a flush writing more writes several
 * frames, so that reading one back never makes a string near a runtime's limit (V8 holds
 * about 512 MiB in one).
 */
export const MAX_FRAME_BYTES: number = 32 * 1024 * 1024;
const MAGIC = [0x54, 0x43, 0x4a, 0x4c]; // "TCJL"

const CRC_TABLE = /* @__PURE__ */ (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (IEEE) of `bytes[start, end)`. */
export function crc32(bytes: Uint8Array, start = 0, end: number = bytes.length): number {
  let c = 0xffffffff;
  for (let i = start; i < end; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** The header that starts an empty journal of `generation`. */
export function journalHeader(generation: number): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES);
  const view = new DataView(out.buffer);
  out.set(MAGIC, 0);
  view.setUint32(4, JOURNAL_FORMAT, true);
  view.setUint32(8, generation, true);
  view.setUint32(12, crc32(out, 0, 12), true);
  return out;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * One transaction's changes (the JSON texts of its records), encoded for {@link encodeAppend}
 * as parts that fit a frame of at most `maxBytes` each (a part holds whole records: one
 * larger record is a part of its own). A UTF-16 code unit takes at most 3 bytes of UTF-8.
 */
export function encodeRecords(records: readonly string[], maxBytes: number = MAX_FRAME_BYTES): Uint8Array[] {
  const parts: Uint8Array[] = [];
  let start = 0;
  let units = 0;
  for (let i = 0; i < records.length; i++) {
    const n = records[i]!.length + 1;
    if (i > start && (units + n) * 3 > maxBytes - 2) { // a frame of this part alone adds "[" and "]"
      parts.push(encoder.encode(records.slice(start, i).join(",")));
      start = i;
      units = 0;
    }
    units += n;
  }
  if (start < records.length || parts.length === 0) {
    parts.push(encoder.encode((start === 0 ? records : records.slice(start)).join(",")));
  }
  return parts;
}

/** The payload length of a frame of `parts`: "[", "]" and a "," between parts. */
function payloadLength(parts: readonly Uint8Array[]): number {
  let length = Math.max(2, parts.length + 1);
  for (const part of parts) length += part.length;
  return length;
}

/**
 * Encode the changes of one or more transactions (parts from {@link encodeRecords}) as one
 * append: as few frames as hold them with at most `maxFrameBytes` of payload each (a part
 * larger than that is a frame of its own).
 */
export function encodeAppend(
  generation: number,
  parts: readonly Uint8Array[],
  maxFrameBytes: number = MAX_FRAME_BYTES,
): Uint8Array {
  const frames: Uint8Array[][] = [];
  let current: Uint8Array[] = [];
  let length = 2;
  for (const part of parts) {
    if (current.length > 0 && length + part.length + 1 > maxFrameBytes) {
      frames.push(current);
      current = [];
      length = 2;
    }
    current.push(part);
    length += part.length + 1;
  }
  frames.push(current);
  let total = 0;
  for (const f of frames) total += FRAME_HEADER_BYTES + payloadLength(f);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  let at = 0;
  frames.forEach((f, index) => {
    const start = at;
    const length = payloadLength(f);
    view.setUint32(at, length, true);
    view.setUint32(at + 8, generation, true);
    view.setUint32(at + 12, index, true);
    view.setUint32(at + 16, frames.length, true);
    at += FRAME_HEADER_BYTES;
    out[at++] = 0x5b; // [
    f.forEach((part, i) => {
      if (i > 0) out[at++] = 0x2c; // ,
      out.set(part, at);
      at += part.length;
    });
    out[at++] = 0x5d; // ]
    view.setUint32(start + 4, crc32(out, start + 8, at), true);
  });
  return out;
}

/** What a journal holds. */
export interface ParsedJournal {
  /** The generation in the header. */
  generation: number;
  /** The format in the header. */
  format: number;
  /** The payload of every frame of every whole append, in order. */
  frames: unknown[][];
  /** Bytes after the last whole append (a torn tail), dropped. */
  tornBytes: number;
}

interface Frame {
  end: number;
  generation: number;
  /** Its place in its append. */
  index: number;
  /** How many frames its append has. */
  count: number;
}

/** The good frame at `at` (`header`: the size of a frame header of the journal's format). */
function frameAt(bytes: Uint8Array, view: DataView, at: number, header: number): Frame | undefined {
  if (bytes.length - at < header) return undefined;
  const length = view.getUint32(at, true);
  const end = at + header + length;
  if (length === 0 || end > bytes.length) return undefined;
  if (crc32(bytes, at + 8, end) !== view.getUint32(at + 4, true)) return undefined;
  const generation = view.getUint32(at + 8, true);
  if (header === FRAME_HEADER_V1) return { end, generation, index: 0, count: 1 };
  return { end, generation, index: view.getUint32(at + 12, true), count: view.getUint32(at + 16, true) };
}

/**
 * Whether damage in the frame at `at` is followed by another append (corruption, not a
 * torn tail): the frames after it, found through its length when that survived, that
 * continue its append are skipped; a good frame that starts an append is damage's proof.
 * When the damage hit the length itself, the bytes after it are searched for a good frame
 * of this journal's generation that starts an append: a torn tail (one append cut short)
 * has none, and without the search a damaged length dropped every later confirmed append.
 */
function appendAfterDamage(bytes: Uint8Array, view: DataView, at: number, header: number, generation: number): boolean {
  const length = bytes.length - at >= 4 ? view.getUint32(at, true) : 0;
  if (length !== 0) {
    let next = at + header + length;
    while (next < bytes.length) {
      const frame = frameAt(bytes, view, next, header);
      if (!frame) break;
      if (frame.index === 0) return true;
      next = frame.end;
    }
  }
  for (let off = at + 1; off + header < bytes.length; off++) {
    // Cheap tests first (length fits, generation, start of an append), then the checksum.
    const n = view.getUint32(off, true);
    if (n === 0 || off + header + n > bytes.length || view.getUint32(off + 8, true) !== generation) continue;
    if (header !== FRAME_HEADER_V1 && view.getUint32(off + 12, true) !== 0) continue;
    const frame = frameAt(bytes, view, off, header);
    if (frame && frame.index === 0) return true;
  }
  return false;
}

/**
 * Parse a journal. Throws `StorageCorruptError` for a bad header or damage before the
 * last good frame, `StorageVersionError` for a newer format.
 */
export function parseJournal(bytes: Uint8Array, location: string): ParsedJournal {
  if (bytes.length < HEADER_BYTES || MAGIC.some((b, i) => bytes[i] !== b)) {
    throw new StorageCorruptError(location, "the journal has no valid header");
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (crc32(bytes, 0, 12) !== view.getUint32(12, true)) {
    throw new StorageCorruptError(location, "the journal header fails its checksum");
  }
  const format = view.getUint32(4, true);
  if (format > JOURNAL_FORMAT) throw new StorageVersionError("journal format", format, JOURNAL_FORMAT);
  const generation = view.getUint32(8, true);
  const header = format < 2 ? FRAME_HEADER_V1 : FRAME_HEADER_BYTES;
  const frames: unknown[][] = [];
  /** The frames read of the append being read, and where it starts. */
  let append: unknown[][] = [];
  let appendCount = 0;
  let appendStart = HEADER_BYTES;
  let at = HEADER_BYTES;
  while (at < bytes.length) {
    const frame = frameAt(bytes, view, at, header);
    if (!frame) {
      // A torn tail ends the journal, and drops its append whole; damage followed by another append is corruption.
      if (appendAfterDamage(bytes, view, at, header, generation)) {
        throw new StorageCorruptError(location, `the journal frame at byte ${at} fails its checksum`);
      }
      break;
    }
    if (frame.generation !== generation) {
      throw new StorageCorruptError(
        location,
        `the journal frame at byte ${at} belongs to generation ${frame.generation}, not ${generation}`,
      );
    }
    if (
      frame.index !== append.length || frame.index >= frame.count || (append.length > 0 && frame.count !== appendCount)
    ) {
      throw new StorageCorruptError(
        location,
        `the journal frame at byte ${at} is out of place: frame ${frame.index} of an append of ${frame.count}, ` +
          `where frame ${append.length}${append.length > 0 ? ` of ${appendCount}` : ""} was due`,
      );
    }
    let payload: unknown;
    try {
      payload = JSON.parse(decoder.decode(bytes.subarray(at + header, frame.end)));
    } catch (e) {
      throw new StorageCorruptError(location, `the journal frame at byte ${at} is not JSON`, { cause: e });
    }
    if (!Array.isArray(payload)) {
      throw new StorageCorruptError(location, `the journal frame at byte ${at} is not a list of changes`);
    }
    append.push(payload);
    appendCount = frame.count;
    at = frame.end;
    if (append.length === frame.count) {
      for (const f of append) frames.push(f);
      append = [];
      appendStart = at;
    }
  }
  return { generation, format, frames, tornBytes: bytes.length - appendStart };
}
