/**
 * Parser for the `mongrel2.conf` language exactly as `m2sh` 1.12.2 accepts it (§11), producing a
 * typed model of servers, hosts, routes and targets.
 *
 * Hand-written lexer + recursive-descent parser: no maintained package parses this format (m2sh's
 * own parser is generated C inside Mongrel2). Files are small, so the lexer tokenizes everything first.
 * Quirks marked "measured" were checked against m2sh 1.12.2.
 */
import { ERROR_CODES, M2gateError } from './errors.js';

export interface ConfigHandler {
  kind: 'handler';
  sendSpec: string;
  sendIdent: string;
  recvSpec: string;
  recvIdent: string;
  protocol: 'json' | 'tnetstring';
  rawPayload: boolean;
  /**
   * Not an m2sh field (m2sh ignores it, so the file still loads in Mongrel2):
   * 'mongrel2' (PUSH/SUB, the default) or 'link' (the m2gate link, served by
   * the gateway on send_spec; protocol/m2gate-link.md).
   */
  transport: 'mongrel2' | 'link';
}
export interface ConfigDir { kind: 'dir'; base: string; indexFile: string; defaultCtype: string; cacheTtl: number }
export interface ConfigProxy { kind: 'proxy'; addr: string; port: number }
export type ConfigTarget = ConfigHandler | ConfigDir | ConfigProxy;
/** Routes keep file order; a target stored in one variable is one shared object (one m2sh row, §11.2). */
export interface ConfigHost { name: string; matching: string; routes: Array<{ path: string; target: ConfigTarget }> }
export interface ConfigServer {
  uuid: string; name?: string; port: number; bindAddr: string; defaultHost: string;
  accessLog: string; errorLog: string; pidFile: string; chroot: string; controlPort: string;
  useSsl: boolean; hosts: ConfigHost[];
}
export interface Mongrel2Config {
  servers: ConfigServer[];
  /** Values stored as text, like m2sh (numbers keep their digits verbatim: `0012`). */
  settings: Record<string, string>;
  mimetypes: Record<string, string>;
  /** Legal but suspicious things, each `file:line:column: text`. */
  warnings?: string[];
}

/**
 * A syntax or semantic error in a config file (registry code M2G_ERR_CONFIG: no HTTP status,
 * level 'error'); the message starts with `file:line:column:`.
 * Lines and columns count from 1; a column counts UTF-16 code units (a tab is one).
 */
export class ConfigError extends M2gateError {
  readonly fileName: string;
  readonly line: number;
  readonly column: number;

  constructor(fileName: string, line: number, column: number, message: string) {
    super(ERROR_CODES.CONFIG, `${fileName}:${line}:${column}: ${message}`);
    this.name = 'ConfigError';
    this.fileName = fileName;
    this.line = line;
    this.column = column;
  }
}

/** Deepest nesting of `(` `[` `{` accepted; bounds the parser's recursion. */
export const MAX_NESTING_DEPTH = 64;

interface Pos { line: number; column: number }
type TokenKind = 'str' | 'num' | 'ident' | 'class' | 'punct' | 'eof';
interface Token extends Pos { kind: TokenKind; text: string }
interface ClassNode { t: 'class'; name: string; params: Map<string, Node>; pos: Pos }
type Node =
  | { t: 'str'; value: string; pos: Pos }
  | { t: 'num'; text: string; pos: Pos }
  | { t: 'ref'; name: string; pos: Pos }
  | ClassNode
  | { t: 'list'; items: Node[]; pos: Pos }
  | { t: 'dict'; entries: Map<string, Node>; pos: Pos };
type Fail = (pos: Pos, message: string) => never;

const WORD = /[A-Za-z_][A-Za-z0-9_]*/y;
const DIGITS = /[0-9]+/y;
// §11.1: a CLASS is an upper-case letter followed by one or more letters; a lone `A`, `Ab9` or
// `Ab_` is an identifier (measured: `A = 1` loads, `Backend = 1` is a syntax error).
const CLASS_NAME = /^[A-Z][A-Za-z]+$/;
const KNOWN_CLASSES = new Set(['Server', 'Host', 'Handler', 'Dir', 'Proxy', 'Filter', 'Xrequest']);
const SEND_IDENT_SAFE = /^[A-Za-z0-9-]+$/;

function tokenize(text: string, fail: Fail): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  let line = 1;
  let column = 1;
  const advance = (to: number): void => {
    for (; i < to; i++) {
      if (text[i] === '\n') { line++; column = 1; } else column++;
    }
  };
  const match = (re: RegExp): string | undefined => { re.lastIndex = i; return re.exec(text)?.[0]; };
  while (i < text.length) {
    const c = text[i] ?? '';
    const pos = { line, column };
    let m: string | undefined;
    if (' \t\r\n\f\v'.includes(c)) advance(i + 1); // C isspace (measured: \f, \v accepted)
    else if (c === '#') {
      const nl = text.indexOf('\n', i);
      // Measured: m2sh reports "INCOMPLETE CONFIG FILE" when the last line is an unterminated comment.
      if (nl < 0) fail(pos, 'a comment on the last line must end with a newline (m2sh 1.12.2 rejects it)');
      advance(nl + 1);
    } else if (c === '"' || c === "'") {
      // §11.1: no escape processing; a backslash only stops the next character from closing.
      let j = i + 1;
      while (j < text.length && text[j] !== c) j += text[j] === '\\' ? 2 : 1;
      if (j >= text.length) fail(pos, 'unterminated string');
      tokens.push({ kind: 'str', text: text.slice(i + 1, j), ...pos });
      advance(j + 1);
    } else if ((m = match(DIGITS)) !== undefined) {
      tokens.push({ kind: 'num', text: m, ...pos });
      advance(i + m.length);
    } else if ((m = match(WORD)) !== undefined) {
      tokens.push({ kind: CLASS_NAME.test(m) ? 'class' : 'ident', text: m, ...pos });
      advance(i + m.length);
    } else if ('=()[]{},:'.includes(c)) {
      tokens.push({ kind: 'punct', text: c, ...pos });
      advance(i + 1);
    } else {
      const why = c === ';' ? " (';' is not allowed)" : c === '-' || c === '.' ? ' (numbers are [0-9]+ only)' : '';
      fail(pos, `invalid character ${JSON.stringify(c)}${why}`);
    }
  }
  tokens.push({ kind: 'eof', text: '', line, column });
  return tokens;
}

function describe(t: Token): string {
  switch (t.kind) {
    case 'eof': return 'end of file';
    case 'str': return `string ${JSON.stringify(t.text.length > 24 ? `${t.text.slice(0, 24)}…` : t.text)}`;
    case 'num': return `number ${t.text}`;
    case 'ident': return `name '${t.text}'`;
    case 'class': return `class name '${t.text}'`;
    case 'punct': return `'${t.text}'`;
  }
}

class Parser {
  readonly #tokens: Token[];
  readonly #fail: Fail;
  #i = 0;

  constructor(tokens: Token[], fail: Fail) { this.#tokens = tokens; this.#fail = fail; }

  #peek(): Token { return this.#tokens[this.#i] ?? this.#tokens[this.#tokens.length - 1] as Token; }
  #take(): Token { const t = this.#peek(); if (t.kind !== 'eof') this.#i++; return t; }
  #isPunct(text: string): boolean { const t = this.#peek(); return t.kind === 'punct' && t.text === text; }
  #expect(text: string): void {
    const t = this.#take();
    if (t.kind !== 'punct' || t.text !== text) this.#fail(t, `expected '${text}' but found ${describe(t)}`);
  }

  /** file = *( IDENT "=" expr ); a reused name keeps the last value (§11.2). */
  file(): Map<string, Node> {
    const vars = new Map<string, Node>();
    while (this.#peek().kind !== 'eof') {
      const t = this.#take();
      if (t.kind === 'class') {
        this.#fail(t, `'${t.text}' is lexed as a class name, not a variable name; start variable names with a lower-case letter (§11.1)`);
      }
      if (t.kind !== 'ident') this.#fail(t, `expected a variable name but found ${describe(t)}`);
      this.#expect('=');
      vars.set(t.text, this.#expr(1, ''));
    }
    return vars;
  }

  #expr(depth: number, orClose: string): Node {
    const t = this.#take();
    const pos = { line: t.line, column: t.column };
    if (t.kind === 'str') return { t: 'str', value: t.text, pos };
    if (t.kind === 'num') return { t: 'num', text: t.text, pos };
    if (t.kind === 'ident') return { t: 'ref', name: t.text, pos };
    if (t.kind === 'class' || (t.kind === 'punct' && '[{'.includes(t.text))) {
      if (depth > MAX_NESTING_DEPTH) this.#fail(t, `nesting deeper than ${MAX_NESTING_DEPTH} levels`);
    }
    if (t.kind === 'class') {
      const params = new Map<string, Node>();
      this.#expect('(');
      this.#sequence(')', () => {
        const p = this.#take();
        if (p.kind !== 'ident') this.#fail(p, `expected a parameter name or ')' but found ${describe(p)}`);
        this.#expect('=');
        params.set(p.text, this.#expr(depth + 1, " or ')'"));
      });
      return { t: 'class', name: t.text, params, pos };
    }
    if (t.kind === 'punct' && t.text === '[') {
      const items: Node[] = [];
      this.#sequence(']', () => items.push(this.#expr(depth + 1, " or ']'")));
      return { t: 'list', items, pos };
    }
    if (t.kind === 'punct' && t.text === '{') {
      const entries = new Map<string, Node>();
      this.#sequence('}', () => {
        const k = this.#take();
        if (k.kind !== 'str') this.#fail(k, `expected a quoted dict key or '}' but found ${describe(k)}`);
        this.#expect(':');
        entries.set(k.text, this.#expr(depth + 1, " or '}'"));
      });
      return { t: 'dict', entries, pos };
    }
    return this.#fail(t, `expected a value${orClose} but found ${describe(t)}`);
  }

  /** Optional commas; one leading comma is fine, a trailing one is not (measured, §11.2). */
  #sequence(close: string, item: () => void): void {
    if (this.#isPunct(close)) { this.#take(); return; }
    for (;;) {
      if (this.#isPunct(',')) {
        this.#take();
        if (this.#isPunct(close)) this.#fail(this.#peek(), `a comma may not stand before '${close}' (trailing comma)`);
      }
      item();
      if (this.#isPunct(close)) { this.#take(); return; }
    }
  }
}

const KIND_NAMES = { str: 'a string', num: 'a number', ref: 'a reference', class: 'a class', list: 'a list', dict: 'a dict' } as const;
const kindName = (n: Node): string => (n.t === 'class' ? `a ${n.name}` : KIND_NAMES[n.t]);

/** Turns the syntax tree into the model. Only values reachable from `servers`, `settings` and
 * `mimetypes` are checked, as m2sh does (an unused variable may name an unknown class). */
class Builder {
  readonly warnings: string[] = [];
  readonly #vars: Map<string, Node>;
  readonly #fail: Fail;
  readonly #fileName: string;
  readonly #hosts = new Map<ClassNode, ConfigHost>();
  readonly #targets = new Map<ClassNode, ConfigTarget>();

  constructor(vars: Map<string, Node>, fail: Fail, fileName: string) {
    this.#vars = vars; this.#fail = fail; this.#fileName = fileName;
  }

  #warn(pos: Pos, message: string): void { this.warnings.push(`${this.#fileName}:${pos.line}:${pos.column}: ${message}`); }

  /** m2sh resolves one level of reference only (measured: `h = g` then `g = Handler(…)` fails with
   * "Expected a Class but got a REF"); this also turns `a = b`, `b = a` into an error. */
  #resolve(n: Node): Node {
    if (n.t !== 'ref') return n;
    const target = this.#vars.get(n.name);
    if (target === undefined) return this.#fail(n.pos, `undefined variable '${n.name}'`);
    if (target.t !== 'ref') return target;
    const seen = [n.name];
    let cur: Node | undefined = target;
    while (cur?.t === 'ref' && !seen.includes(cur.name)) { seen.push(cur.name); cur = this.#vars.get(cur.name); }
    if (cur?.t === 'ref') return this.#fail(n.pos, `reference cycle: ${[...seen, cur.name].join(' -> ')}`);
    return this.#fail(n.pos, `'${n.name}' refers to '${target.name}', which is itself a reference; m2sh 1.12.2 follows only one level`);
  }

  #posOf(c: ClassNode, key: string): Pos { return c.params.get(key)?.pos ?? c.pos; }

  #param(c: ClassNode, key: string, required: boolean): Node | undefined {
    const raw = c.params.get(key);
    if (raw === undefined && required) this.#fail(c.pos, `${c.name} is missing required parameter '${key}'`);
    return raw;
  }

  #str<R extends boolean>(c: ClassNode, key: string, required: R): R extends true ? string : string | undefined;
  #str(c: ClassNode, key: string, required: boolean): string | undefined {
    const raw = this.#param(c, key, required);
    if (raw === undefined) return undefined;
    const v = this.#resolve(raw);
    return v.t === 'str' ? v.value : this.#fail(raw.pos, `${c.name}.${key} must be a string, not ${kindName(v)}`);
  }

  #num(c: ClassNode, key: string, fallback: number | undefined, range?: [number, number]): number {
    const raw = this.#param(c, key, fallback === undefined);
    if (raw === undefined) return fallback ?? 0;
    const v = this.#resolve(raw);
    if (v.t !== 'num') return this.#fail(raw.pos, `${c.name}.${key} must be a number, not ${kindName(v)}`);
    const n = Number(v.text);
    const [min, max] = range ?? [0, Number.MAX_SAFE_INTEGER];
    if (n < min || n > max) this.#fail(raw.pos, `${c.name}.${key} must be ${min}-${max}, got ${v.text}`);
    return n;
  }

  #list(c: ClassNode, key: string): Node[] {
    const raw = this.#param(c, key, true) as Node;
    const v = this.#resolve(raw);
    return v.t === 'list' ? v.items : this.#fail(raw.pos, `${c.name}.${key} must be a list, not ${kindName(v)}`);
  }

  #classOf(raw: Node, allowed: readonly string[], what: string): ClassNode {
    const v = this.#resolve(raw);
    if (v.t !== 'class') return this.#fail(raw.pos, `expected ${what} but found ${kindName(v)}`);
    if (!KNOWN_CLASSES.has(v.name)) return this.#fail(v.pos, `unknown class '${v.name}'`);
    return allowed.includes(v.name) ? v : this.#fail(v.pos, `a ${v.name} cannot be used here; expected ${what}`);
  }

  server(raw: Node): ConfigServer {
    const c = this.#classOf(raw, ['Server'], 'a Server');
    const server: ConfigServer = {
      uuid: this.#str(c, 'uuid', true),
      port: this.#num(c, 'port', undefined, [1, 65535]), // §11.3: must be > 0; 65535 is TCP's limit
      bindAddr: this.#str(c, 'bind_addr', false) ?? '0.0.0.0',
      defaultHost: this.#str(c, 'default_host', true),
      accessLog: this.#str(c, 'access_log', true),
      errorLog: this.#str(c, 'error_log', true),
      pidFile: this.#str(c, 'pid_file', true),
      chroot: this.#str(c, 'chroot', false) ?? '', // §11.3: '' = no chroot
      controlPort: this.#str(c, 'control_port', false) ?? '',
      useSsl: this.#num(c, 'use_ssl', 0) !== 0,
      hosts: this.#list(c, 'hosts').map((h) => this.#host(h)),
    };
    if (!server.hosts.some((h) => h.name === server.defaultHost)) {
      // §6.1: Mongrel2 refuses to start when no Host is named like default_host.
      this.#fail(this.#posOf(c, 'default_host'), `default_host '${server.defaultHost}' names none of this server's hosts`);
    }
    const name = this.#str(c, 'name', false);
    if (name === undefined) this.#warn(c.pos, 'Server has no name (m2sh stores NULL; `m2sh start -name` cannot find it)');
    else server.name = name;
    for (const key of ['filters', 'xrequests']) {
      if (c.params.has(key) && this.#list(c, key).length > 0) this.#warn(this.#posOf(c, key), `Server.${key} are not supported and are ignored`);
    }
    return server;
  }

  #host(raw: Node): ConfigHost {
    const c = this.#classOf(raw, ['Host'], 'a Host');
    const known = this.#hosts.get(c);
    if (known !== undefined) return known;
    const name = this.#str(c, 'name', true);
    const routesRaw = this.#param(c, 'routes', true) as Node;
    const routes = this.#resolve(routesRaw);
    if (routes.t !== 'dict') return this.#fail(routesRaw.pos, `Host.routes must be a dict, not ${kindName(routes)}`);
    const host: ConfigHost = {
      name,
      matching: this.#str(c, 'matching', false) ?? name, // §11.3: defaults to name
      routes: [...routes.entries].map(([path, target]) => ({ path, target: this.#target(target) })),
    };
    this.#hosts.set(c, host);
    return host;
  }

  #target(raw: Node): ConfigTarget {
    const c = this.#classOf(raw, ['Handler', 'Dir', 'Proxy'], 'a route target (Handler, Dir or Proxy)');
    let target = this.#targets.get(c);
    if (target !== undefined) return target;
    if (c.name === 'Handler') target = this.#handler(c);
    else if (c.name === 'Dir') {
      const base = this.#str(c, 'base', true);
      // §7: m2sh and the server both refuse a base without the trailing slash.
      if (!base.endsWith('/')) this.#fail(this.#posOf(c, 'base'), `Dir.base must end with '/' (got '${base}')`);
      target = {
        kind: 'dir', base, indexFile: this.#str(c, 'index_file', true),
        defaultCtype: this.#str(c, 'default_ctype', true), cacheTtl: this.#num(c, 'cache_ttl', 0),
      };
    } else target = { kind: 'proxy', addr: this.#str(c, 'addr', true), port: this.#num(c, 'port', undefined, [1, 65535]) };
    this.#targets.set(c, target);
    return target;
  }

  #handler(c: ClassNode): ConfigHandler {
    const sendIdent = this.#str(c, 'send_ident', true);
    if (!SEND_IDENT_SAFE.test(sendIdent)) {
      // §4.1: handlers echo send_ident as the reply sender, which must be [A-Za-z0-9-]+.
      this.#warn(this.#posOf(c, 'send_ident'), `send_ident '${sendIdent}' has characters outside [A-Za-z0-9-]; Mongrel2 drops every reply from such a handler`);
    }
    const protocol = this.#str(c, 'protocol', false) ?? 'json';
    if (protocol !== 'json' && protocol !== 'tnetstring') {
      this.#warn(this.#posOf(c, 'protocol'), `protocol '${protocol}' is neither 'json' nor 'tnetstring'; it behaves as json (§11.3)`);
    }
    const handler: ConfigHandler = {
      kind: 'handler', sendSpec: this.#str(c, 'send_spec', true), sendIdent,
      recvSpec: this.#str(c, 'recv_spec', true), recvIdent: this.#str(c, 'recv_ident', true),
      protocol: protocol === 'tnetstring' ? 'tnetstring' : 'json', rawPayload: this.#num(c, 'raw_payload', 0) !== 0,
      transport: 'mongrel2',
    };
    const transport = this.#str(c, 'transport', false);
    if (transport !== undefined) {
      if (transport !== 'mongrel2' && transport !== 'link') this.#fail(this.#posOf(c, 'transport'), `transport must be 'mongrel2' or 'link' (got '${transport}')`);
      handler.transport = transport;
    }
    return handler;
  }

  /** `settings` / `mimetypes`: string or number values kept as text; others are dropped, as m2sh does (measured). */
  textDict(varName: string): Record<string, string> {
    const out = Object.create(null) as Record<string, string>; // keys like "__proto__" stay plain data
    const raw = this.#vars.get(varName);
    if (raw === undefined) return out;
    const dict = this.#resolve(raw);
    if (dict.t !== 'dict') return this.#fail(raw.pos, `${varName} must be a dict, not ${kindName(dict)}`);
    for (const [key, valueRaw] of dict.entries) {
      const v = this.#resolve(valueRaw);
      if (v.t === 'str') out[key] = v.value;
      else if (v.t === 'num') out[key] = v.text;
      else this.#warn(valueRaw.pos, `${varName}[${JSON.stringify(key)}] is ${kindName(v)}; m2sh ignores it`);
    }
    return out;
  }
}

/**
 * Parses and validates a mongrel2.conf text (§11).
 * @param fileName used in messages only; defaults to `mongrel2.conf`.
 * @throws {ConfigError} (code `M2G_ERR_CONFIG`, message `file:line:column: …`) on a syntax error,
 *   nesting deeper than {@link MAX_NESTING_DEPTH}, an undefined or cyclic reference, an unknown class,
 *   a missing required field, a wrongly typed value, or a missing `servers` list.
 */
export function parseConfig(text: string, fileName = 'mongrel2.conf'): Mongrel2Config {
  const fail: Fail = (pos, message) => { throw new ConfigError(fileName, pos.line, pos.column, message); };
  const vars = new Parser(tokenize(text, fail), fail).file();
  const b = new Builder(vars, fail, fileName);
  const serversRaw = vars.get('servers');
  if (serversRaw === undefined) fail({ line: 1, column: 1 }, "no 'servers' variable; the file must set servers = [ … ] (§11.2)");
  // Measured: m2sh requires a list literal here ("servers variable should be a list").
  if (serversRaw.t !== 'list') fail(serversRaw.pos, `servers must be a list written in place, not ${kindName(serversRaw)}`);
  if (serversRaw.items.length === 0) b.warnings.push(`${fileName}:${serversRaw.pos.line}:${serversRaw.pos.column}: servers is empty`);
  const servers = serversRaw.items.map((s) => b.server(s));
  return { servers, settings: b.textDict('settings'), mimetypes: b.textDict('mimetypes'), warnings: b.warnings };
}

/**
 * Reads an integer setting with C `atoi` semantics (§11.4): leading white space, an optional sign,
 * then digits up to the first non-digit (`"20k"` → 20; no digits → 0). Saturates at the C `int` range.
 * @returns `fallback` when the key is not set.
 */
export function settingInt(config: Mongrel2Config, key: string, fallback: number): number {
  if (!Object.hasOwn(config.settings, key)) return fallback;
  const m = /^[ \t\n\v\f\r]*([+-]?)([0-9]*)/.exec(config.settings[key] ?? '');
  const n = Number(`${m?.[1] ?? ''}${m?.[2] || '0'}`);
  return Math.max(-2147483648, Math.min(2147483647, n)) || 0; // `|| 0` turns -0 into 0
}

/**
 * Picks a server by uuid (checked first, as `mongrel2 <db> <uuid>` does) or by name (`m2sh start -name`).
 * @param nameOrUuid omitted → the first server.
 * @throws {M2gateError} code `M2G_ERR_CONFIG` when the config has no servers or none matches.
 */
export function findServer(config: Mongrel2Config, nameOrUuid?: string): ConfigServer {
  const found = nameOrUuid === undefined
    ? config.servers[0]
    : config.servers.find((s) => s.uuid === nameOrUuid) ?? config.servers.find((s) => s.name === nameOrUuid);
  if (found !== undefined) return found;
  const known = config.servers.map((s) => (s.name === undefined ? s.uuid : `${s.uuid} (${s.name})`)).join(', ');
  throw new M2gateError(
    ERROR_CODES.CONFIG,
    nameOrUuid === undefined ? 'the config defines no servers' : `no server with uuid or name '${nameOrUuid}' (servers: ${known || 'none'})`,
  );
}
