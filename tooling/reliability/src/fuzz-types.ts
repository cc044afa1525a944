// The shapes the fuzz family's formats share: seed files, length fields, readers, mutations.
/** A file to mutate, with what the mutations should aim at. */
export interface Seed {
  name: string;
  bytes: Uint8Array;
  /** Length fields: where, and how they are written. */
  fields: Field[];
  /** Mutations aim at [0, headerEnd) more often (the parser's logic lives there). */
  headerEnd?: number;
}

export interface Field {
  at: number;
  width: number;
  kind: 'u16' | 'u32' | 'u64' | 'digits' | 'octal';
  /** What the field is, for the reproduction line. */
  what: string;
}

/** One public reader: a path or bytes in, a comparable value out. */
export interface Reader {
  call: string;
  fromPath: boolean;
  read(path: string, bytes: Uint8Array): Promise<unknown> | unknown;
  /** How two results differ, or undefined when equal. */
  diff(a: unknown, b: unknown): string | undefined;
}

export interface Mutated {
  bytes: Uint8Array;
  text: string;
  /** Byte positions changed in place (bit flips, overwrites): for tar's member-data rule. */
  changed?: number[];
  /** A tar header edited with its checksum recomputed: a valid header the format cannot tell from the original. */
  consistent?: boolean;
}
