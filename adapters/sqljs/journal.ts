/**
 * The journal's byte format: a header, then one frame per append (the transactions one
 * group-commit flush writes).
 *
 * ```
 * header (16 bytes): "TCJL" | format u32 | generation u32 | crc32(first 12 bytes) u32
 * frame:             length u32 | crc32(generation + payload) u32 | generation u32 | payload
 * payload:           UTF-8 JSON array of row changes (see `db.ts`), in transaction order
 * ```
 *
 * Integers are little-endian. A frame belongs to the snapshot of the same generation;
 * a frame is written whole or, after a crash, torn: reading stops at the first frame that
 * is incomplete or fails its checksum. An append is one frame because a crash of the
 * machine may keep any of the pages of an append that was not synced, in any order: damage
 * anywhere in it is then damage in the last frame, a torn tail. A damaged frame followed by
 * a good one is not a torn tail but corruption, and is reported as such. (Journals written
 * before, with one frame per transaction, read the same way.)
 *
 * @module
 */

import { StorageCorruptError, StorageVersionError } from "../../src/errors.ts";

/** The journal format this code writes and reads. */
export const JOURNAL_FORMAT = 1;
/** Size of the journal header in bytes. */
export const HEADER_BYTES = 16;
const FRAME_HEADER = 12;
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

/** One transaction's changes (the JSON texts of its records), encoded for {@link encodeFrame}. */
export function encodeRecords(records: readonly string[]): Uint8Array {
  return encoder.encode(records.join(","));
}

/** Encode the changes of one or more transactions (each from {@link encodeRecords}) as one frame. */
export function encodeFrame(generation: number, parts: readonly Uint8Array[]): Uint8Array {
  let length = Math.max(2, parts.length + 1); // "[", "]" and a "," between parts
  for (const part of parts) length += part.length;
  const out = new Uint8Array(FRAME_HEADER + length);
  const view = new DataView(out.buffer);
  view.setUint32(0, length, true);
  view.setUint32(8, generation, true);
  let at = FRAME_HEADER;
  out[at++] = 0x5b; // [
  parts.forEach((part, i) => {
    if (i > 0) out[at++] = 0x2c; // ,
    out.set(part, at);
    at += part.length;
  });
  out[at] = 0x5d; // ]
  view.setUint32(4, crc32(out, 8, out.length), true);
  return out;
}

/** What a journal holds. */
export interface ParsedJournal {
  /** The generation in the header. */
  generation: number;
  /** The payload of every whole frame, in order. */
  frames: unknown[][];
  /** Bytes after the last whole frame (a torn tail), dropped. */
  tornBytes: number;
}

function frameAt(bytes: Uint8Array, view: DataView, at: number): { end: number; generation: number } | undefined {
  if (bytes.length - at < FRAME_HEADER) return undefined;
  const length = view.getUint32(at, true);
  const end = at + FRAME_HEADER + length;
  if (length === 0 || end > bytes.length) return undefined;
  if (crc32(bytes, at + 8, end) !== view.getUint32(at + 4, true)) return undefined;
  return { end, generation: view.getUint32(at + 8, true) };
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
  const frames: unknown[][] = [];
  let at = HEADER_BYTES;
  while (at < bytes.length) {
    const frame = frameAt(bytes, view, at);
    if (!frame) {
      // A torn tail ends the journal; a bad frame followed by a good one is damage.
      const length = bytes.length - at >= 4 ? view.getUint32(at, true) : 0;
      const next = at + FRAME_HEADER + length;
      if (length > 0 && next < bytes.length && frameAt(bytes, view, next)) {
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
    let payload: unknown;
    try {
      payload = JSON.parse(decoder.decode(bytes.subarray(at + FRAME_HEADER, frame.end)));
    } catch (e) {
      throw new StorageCorruptError(location, `the journal frame at byte ${at} is not JSON`, { cause: e });
    }
    if (!Array.isArray(payload)) {
      throw new StorageCorruptError(location, `the journal frame at byte ${at} is not a list of changes`);
    }
    frames.push(payload);
    at = frame.end;
  }
  return { generation, frames, tornBytes: bytes.length - at };
}
