/**
 * Mongrel2's route pattern language (§6.3): Lua 5.1 patterns with `\` as the
 * escape character, no captures (`(` and `)` are skipped wherever they stand),
 * and `$` an end anchor only as the very last byte of the pattern. Matching is
 * byte-wise: subjects and sources are latin1 strings (one char per byte); a
 * char above 0xFF never matches a class, set or `.`.
 *
 * Patterns are compiled once (config time) into a flat item list with a
 * 256-entry table per single-byte item, so a match does no parsing and no
 * allocation. The matcher backtracks like Lua's, with two bounds Lua lacks:
 * - work: every item visit and every byte scanned costs one step; a match that
 *   needs more than `maxSteps` steps gives up and reports no match (-1).
 *   Pathological patterns such as `.-.-.-.-x$` are O(n^k) in Lua.
 * - depth: the matcher recurses only on `* + - ?` items, and each nested call
 *   starts at a later item, so depth ≤ number of such items, which compile
 *   caps at {@link MAX_BACKTRACKING_ITEMS}.
 */
import { ERROR_CODES, M2gateError } from './errors.js';

/** A compiled pattern. Reusable and safe to share; holds no per-call state between calls. */
export interface CompiledPattern {
  /** The pattern text as given to {@link compilePattern}. */
  readonly source: string;
  /**
   * Matches anchored at `start` against `subject[start, end)`, which is treated as the
   * whole subject: `\f` reads the byte before `start` and the byte at `end` as NUL, as
   * Mongrel2 does when it matches a route pattern against the path remainder (measured).
   * Returns the end index of the first match Lua's backtracking order finds, or -1
   * (also when `start > end` or the step budget is exceeded). `start` defaults to 0,
   * `end` to `subject.length`. Never throws.
   */
  match(subject: string, start?: number, end?: number): number;
}

export interface CompilePatternOptions {
  /** Step budget per `match()` call; exceeding it means "no match". Defaults to {@link DEFAULT_MAX_PATTERN_STEPS}. */
  maxSteps?: number;
  /** Anchor at the end as if the pattern ended with an anchoring `$` (used for Host `matching`, §6.1). Defaults to false. */
  anchorEnd?: boolean;
}

/**
 * Default step budget. Linear patterns need a few steps per subject byte, and a request
 * line must fit in 4096 bytes (§10), so real matches stay far below this; it caps the
 * worst case at roughly a millisecond.
 */
export const DEFAULT_MAX_PATTERN_STEPS = 100_000;
/** Most `* + - ?` items one pattern may hold; bounds the matcher's recursion depth. */
export const MAX_BACKTRACKING_ITEMS = 1_000;

const ITEM = { SINGLE: 0, BALANCE: 1, FRONTIER: 2, END: 3 } as const;
type ItemKind = (typeof ITEM)[keyof typeof ITEM];
const REPEAT = { ONE: 0, STAR: 1, PLUS: 2, LAZY: 3, OPTIONAL: 4 } as const;
type Repeat = (typeof REPEAT)[keyof typeof REPEAT];

/** One shape for every item keeps the hot loop monomorphic. */
interface Item {
  readonly kind: ItemKind;
  readonly repeat: Repeat;
  /** SINGLE and FRONTIER: 1 for each byte the item accepts. */
  readonly set: Uint8Array;
  /** BALANCE: the opening and closing byte of `\bxy`. */
  readonly open: number;
  readonly close: number;
}

const NO_MATCH = -1;
const ABORTED = -2;
const NO_SET = new Uint8Array(0);

const BACKSLASH = 0x5c;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const CARET = 0x5e;
const DASH = 0x2d;
const DOLLAR = 0x24;
const DOT = 0x2e;
const OPEN_PAREN = 0x28;
const CLOSE_PAREN = 0x29;

const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;
const isLower = (c: number): boolean => c >= 0x61 && c <= 0x7a;
const isUpper = (c: number): boolean => c >= 0x41 && c <= 0x5a;
const isAlpha = (c: number): boolean => isLower(c) || isUpper(c);
const isSpace = (c: number): boolean => c === 0x20 || (c >= 0x09 && c <= 0x0d);
const isControl = (c: number): boolean => c < 0x20 || c === 0x7f;

/** `\<cl>` applied to byte `c`: C-locale classes, upper case = complement, other `cl` = literal. */
function inClass(c: number, cl: number): boolean {
  let res: boolean;
  switch (isUpper(cl) ? cl + 0x20 : cl) {
    case 0x61: res = isAlpha(c); break; // a
    case 0x63: res = isControl(c); break; // c
    case 0x64: res = isDigit(c); break; // d
    case 0x6c: res = isLower(c); break; // l
    case 0x70: res = c > 0x20 && c < 0x7f && !isAlpha(c) && !isDigit(c); break; // p
    case 0x73: res = isSpace(c); break; // s
    case 0x75: res = isUpper(c); break; // u
    case 0x77: res = isAlpha(c) || isDigit(c); break; // w
    case 0x78: res = isDigit(c) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x66); break; // x
    case 0x7a: res = c === 0; break; // z
    default: return c === cl;
  }
  return isUpper(cl) ? !res : res;
}

/**
 * Whether byte `c` is in the set `[...]` spanning `src[open..close]` (both brackets).
 * Same reading as Lua's: `\X` is a class or literal, `a-z` is a range only when the
 * `-` is followed by something other than the closing `]`, `^` negates only first.
 */
function inSet(src: string, c: number, open: number, close: number): boolean {
  let p = open;
  let found = true;
  if (src.charCodeAt(p + 1) === CARET) {
    found = false;
    p++;
  }
  while (++p < close) {
    const ch = src.charCodeAt(p);
    if (ch === BACKSLASH) {
      p++;
      if (inClass(c, src.charCodeAt(p))) return found;
    } else if (src.charCodeAt(p + 1) === DASH && p + 2 < close) {
      p += 2;
      if (ch <= c && c <= src.charCodeAt(p)) return found;
    } else if (ch === c) {
      return found;
    }
  }
  return !found;
}

function table(accepts: (c: number) => boolean): Uint8Array {
  const t = new Uint8Array(256);
  for (let c = 0; c < 256; c++) t[c] = accepts(c) ? 1 : 0;
  return t;
}

function malformed(source: string, what: string, at: number): M2gateError {
  return new M2gateError(ERROR_CODES.CONFIG, `malformed pattern '${source}': ${what} (at offset ${at})`);
}

/** Index just past the `]` of the set opening at `open`; a `]` right after `[` or `[^` is literal. */
function setEnd(source: string, open: number): number {
  let p = open + 1;
  if (source.charCodeAt(p) === CARET) p++;
  do {
    if (p >= source.length) throw malformed(source, "missing ']'", open);
    if (source.charCodeAt(p++) === BACKSLASH && p < source.length) p++;
  } while (p >= source.length || source.charCodeAt(p) !== CLOSE_BRACKET);
  return p + 1;
}

/**
 * Compiles a Mongrel2 pattern (§6.3), e.g. the part of a route key from its first `(`.
 * @throws {M2gateError} code CONFIG for a malformed pattern: trailing `\`, unclosed or
 *   empty `[set]`, `\b` without two following bytes, `\f` not followed by `[`, more than
 *   {@link MAX_BACKTRACKING_ITEMS} quantified items, or a non-positive `maxSteps`.
 *   Mongrel2 only logs such errors when a request reaches them; we refuse them up front.
 */
export function compilePattern(source: string, options: CompilePatternOptions = {}): CompiledPattern {
  const maxSteps = options.maxSteps ?? DEFAULT_MAX_PATTERN_STEPS;
  if (!Number.isSafeInteger(maxSteps) || maxSteps < 1) {
    throw new M2gateError(ERROR_CODES.CONFIG, `maxSteps must be a positive integer, got ${maxSteps}`);
  }
  const items: Item[] = [];
  const n = source.length;
  let backtracking = 0;
  let i = 0;
  while (i < n) {
    const c = source.charCodeAt(i);
    if (c === OPEN_PAREN || c === CLOSE_PAREN) {
      i++; // no captures in Mongrel2: parentheses only mark where the pattern starts
    } else if (c === DOLLAR && i === n - 1) {
      items.push(item(ITEM.END));
      i++;
    } else if (c === BACKSLASH && source.charCodeAt(i + 1) === 0x62 /* b */) {
      if (i + 3 >= n) throw malformed(source, '\\b needs two bytes after it', i);
      items.push(item(ITEM.BALANCE, NO_SET, REPEAT.ONE, source.charCodeAt(i + 2), source.charCodeAt(i + 3)));
      i += 4;
    } else if (c === BACKSLASH && source.charCodeAt(i + 1) === 0x66 /* f */) {
      if (source.charCodeAt(i + 2) !== OPEN_BRACKET) throw malformed(source, "missing '[' after \\f", i);
      const end = setEnd(source, i + 2);
      items.push(item(ITEM.FRONTIER, table((b) => inSet(source, b, i + 2, end - 1))));
      i = end;
    } else {
      let end: number;
      let set: Uint8Array;
      if (c === BACKSLASH) {
        if (i + 1 >= n) throw malformed(source, "pattern ends with '\\'", i);
        const cl = source.charCodeAt(i + 1);
        set = table((b) => inClass(b, cl));
        end = i + 2;
      } else if (c === OPEN_BRACKET) {
        end = setEnd(source, i);
        set = table((b) => inSet(source, b, i, end - 1));
      } else {
        set = c === DOT ? table(() => true) : table((b) => b === c);
        end = i + 1;
      }
      // A quantifier applies only when it directly follows the item (`a)*` is `a` then a literal `*`).
      const repeat = quantifier(source.charCodeAt(end));
      if (repeat !== REPEAT.ONE) {
        if (++backtracking > MAX_BACKTRACKING_ITEMS) {
          throw malformed(source, `more than ${MAX_BACKTRACKING_ITEMS} quantified items`, end);
        }
        end++;
      }
      items.push(item(ITEM.SINGLE, set, repeat));
      i = end;
    }
  }
  if (options.anchorEnd === true) items.push(item(ITEM.END));
  return new BacktrackingPattern(source, items, maxSteps);
}

function quantifier(c: number): Repeat {
  if (c === 0x2a /* * */) return REPEAT.STAR;
  if (c === 0x2b /* + */) return REPEAT.PLUS;
  if (c === DASH) return REPEAT.LAZY;
  return c === 0x3f /* ? */ ? REPEAT.OPTIONAL : REPEAT.ONE;
}

function item(kind: ItemKind, set: Uint8Array = NO_SET, repeat: Repeat = REPEAT.ONE, open = 0, close = 0): Item {
  return { kind, repeat, set, open, close };
}

class BacktrackingPattern implements CompiledPattern {
  readonly source: string;
  readonly #items: readonly Item[];
  readonly #maxSteps: number;
  // Per-call state; match() is synchronous and never re-entered.
  #subject = '';
  #start = 0;
  #end = 0;
  #steps = 0;

  constructor(source: string, items: readonly Item[], maxSteps: number) {
    this.source = source;
    this.#items = items;
    this.#maxSteps = maxSteps;
  }

  match(subject: string, start = 0, end = subject.length): number {
    if (start < 0 || end > subject.length || start > end) return NO_MATCH;
    this.#subject = subject;
    this.#start = start;
    this.#end = end;
    this.#steps = 0;
    const result = this.#run(start, 0);
    this.#subject = '';
    return result < 0 ? NO_MATCH : result;
  }

  /** Matches items[i..] at s. Returns the end index, NO_MATCH, or ABORTED (propagated as-is). */
  #run(s: number, i: number): number {
    const subject = this.#subject;
    const end = this.#end;
    for (;;) {
      if (++this.#steps > this.#maxSteps) return ABORTED;
      const item = this.#items[i];
      if (item === undefined) return s;
      switch (item.kind) {
        case ITEM.END:
          return s === end ? s : NO_MATCH;
        case ITEM.BALANCE:
          s = this.#balance(s, item.open, item.close);
          if (s < 0) return s;
          i++;
          continue;
        case ITEM.FRONTIER: {
          const before = s === this.#start ? 0 : subject.charCodeAt(s - 1);
          const at = s < end ? subject.charCodeAt(s) : 0;
          if (item.set[before] === 1 || item.set[at] !== 1) return NO_MATCH;
          i++;
          continue;
        }
        default: {
          const hit = s < end && item.set[subject.charCodeAt(s)] === 1;
          switch (item.repeat) {
            case REPEAT.ONE:
              if (!hit) return NO_MATCH;
              s++;
              i++;
              continue;
            case REPEAT.OPTIONAL: {
              if (hit) {
                const r = this.#run(s + 1, i + 1);
                if (r !== NO_MATCH) return r;
              }
              i++;
              continue;
            }
            case REPEAT.STAR:
              return this.#greedy(s, i, item.set);
            case REPEAT.PLUS:
              return hit ? this.#greedy(s + 1, i, item.set) : NO_MATCH;
            default:
              return this.#lazy(s, i, item.set);
          }
        }
      }
    }
  }

  #greedy(s: number, i: number, set: Uint8Array): number {
    let k = s;
    while (k < this.#end && set[this.#subject.charCodeAt(k)] === 1) k++;
    this.#steps += k - s;
    for (; k >= s; k--) {
      const r = this.#run(k, i + 1);
      if (r !== NO_MATCH) return r;
    }
    return NO_MATCH;
  }

  #lazy(s: number, i: number, set: Uint8Array): number {
    for (;;) {
      const r = this.#run(s, i + 1);
      if (r !== NO_MATCH) return r;
      if (s < this.#end && set[this.#subject.charCodeAt(s)] === 1) s++;
      else return NO_MATCH;
    }
  }

  /** `\bxy`: from an `x` at s to its matching `y`; the close byte is checked first, as in Lua. */
  #balance(s: number, open: number, close: number): number {
    const subject = this.#subject;
    if (s >= this.#end || subject.charCodeAt(s) !== open) return NO_MATCH;
    let depth = 1;
    const from = s;
    while (++s < this.#end) {
      const c = subject.charCodeAt(s);
      if (c === close) {
        if (--depth === 0) {
          this.#steps += s - from;
          return s + 1;
        }
      } else if (c === open) {
        depth++;
      }
    }
    this.#steps += s - from;
    return this.#steps > this.#maxSteps ? ABORTED : NO_MATCH;
  }
}
