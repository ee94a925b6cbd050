// CURVE on m2gate links: key files and settings, the ZAP allow-list on a
// PULL (requests) and a SUB (replies: the gateway binds SUB, services connect
// PUB, so the SUB is the CURVE server and must not take injected replies),
// fail-closed without an authenticator, and `m2gate keygen`.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import fc from 'fast-check';
import { Publisher, Pull, Push, Subscriber, type EventOfType, type EventType, type Socket } from 'zeromq';
import {
  clientSocketOptions,
  curveClientOptions,
  curveServerOptions,
  derivePublicKey,
  generateKeyPair,
  readAllowList,
  readKeyPair,
  readPublicKey,
  resolveCurveConfig,
  serverSocketOptions,
  startCurveAuthenticator,
  startZapAuthenticator,
  writeKeyPair,
  type ZapAuthenticator,
  type ZapDecision,
} from '../zmq/curve.js';
import { z85Decode, z85Encode } from '../zmq/z85.js';
import { ERROR_CODES, M2gateError } from '../protocol/errors.js';
import { M2GATE_BIN, runCli, stopAll, tempDir } from './helpers/service.js';

const run = promisify(execFile);
// A regression in the allow-list shows as an awaited denial that never comes: the timeouts turn that into a failure.
const sockets: Socket[] = [];
after(async () => {
  for (const s of sockets.splice(0)) s.close();
  await stopAll();
});

/** Registers a socket for closing at the end (linger 0: denied peers hold unsendable messages). */
function track<S extends Socket>(socket: S): S {
  socket.linger = 0;
  sockets.push(socket);
  return socket;
}

/** The next event of one type on a socket. */
function nextEvent<E extends EventType>(socket: Socket, type: E): Promise<EventOfType<E>> {
  return new Promise((resolve) => {
    const listener = (event: EventOfType<E>): void => {
      socket.events.off(type, listener);
      resolve(event);
    };
    socket.events.on(type, listener);
  });
}

/** A logger stand-in that keeps what was logged. */
function logSink() {
  const lines: Array<{ level: string; fields: Record<string, unknown>; msg: string }> = [];
  const at = (level: string) => (fields: Record<string, unknown>, msg: string) => void lines.push({ level, fields, msg });
  return { lines, log: { warn: at('warn'), debug: at('debug') } as never };
}

const isConfigError = (pattern: RegExp) => (err: unknown) =>
  err instanceof M2gateError && err.code === ERROR_CODES.CONFIG && pattern.test(err.message);

/**
 * Sends from a peer that may have no pipe: a refused handshake can leave a
 * PUSH with none, and its send would wait forever. With sendTimeout 0 the
 * message is queued on the pipe if there is one (where libzmq holds it until
 * a handshake succeeds), else dropped at once.
 */
async function trySend(socket: Push, message: string): Promise<void> {
  socket.sendTimeout = 0;
  await socket.send(message).catch(() => {});
}

async function closeAll(...items: Array<Socket | ZapAuthenticator | undefined>): Promise<void> {
  for (const item of items) {
    if (item === undefined) continue;
    if ('events' in item) item.close();
    else await item.close();
  }
}

// --- keys -------------------------------------------------------------------

test('Z85 matches the RFC 32 vector, round-trips any multiple of 4 bytes, and rejects non-Z85', () => {
  const vector = Buffer.from([0x86, 0x4f, 0xd2, 0x6f, 0xb5, 0x59, 0xf7, 0x5b]);
  assert.equal(z85Encode(vector), 'HelloWorld');
  assert.deepEqual(z85Decode('HelloWorld'), vector);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }).map((a) => a.subarray(0, a.length - (a.length % 4))), (bytes) => {
      assert.deepEqual(z85Decode(z85Encode(bytes)), Buffer.from(bytes));
    }),
  );
  assert.equal(z85Decode('Hello'.slice(0, 4)), undefined, 'length not a multiple of 5');
  assert.equal(z85Decode('Hell"'), undefined, 'character outside the alphabet');
  assert.equal(z85Decode('#####'), undefined, 'group above 2^32 - 1');
  assert.throws(() => z85Encode(Buffer.alloc(3)), RangeError);
});

test('generated pairs are 40-character Z85 keys whose public key derives from the secret', () => {
  for (let i = 0; i < 20; i++) {
    const pair = generateKeyPair();
    assert.equal(z85Decode(pair.publicKey)?.length, 32);
    assert.equal(z85Decode(pair.secretKey)?.length, 32);
    assert.equal(derivePublicKey(pair.secretKey), pair.publicKey);
  }
  assert.throws(() => derivePublicKey('short'), isConfigError(/40 Z85 characters/));
});

test('key files: .key (0600) and .pub round-trip; no overwrite; bare and mismatched files', () => {
  const dir = tempDir('m2gate-curve-');
  const pair = generateKeyPair();
  const { secretFile, publicFile } = writeKeyPair(join(dir, 'gw'), pair);
  assert.deepEqual([secretFile, publicFile], [join(dir, 'gw.key'), join(dir, 'gw.pub')]);
  assert.equal(statSync(secretFile).mode & 0o777, 0o600);
  assert.deepEqual(readKeyPair(secretFile), pair);
  assert.equal(readPublicKey(publicFile), pair.publicKey);
  assert.ok(!readFileSync(publicFile, 'utf8').includes(pair.secretKey), 'the .pub file holds no secret');

  const before = readFileSync(secretFile, 'utf8');
  assert.throws(() => writeKeyPair(join(dir, 'gw'), generateKeyPair()), isConfigError(/refusing to overwrite .*gw\.key/));
  assert.equal(readFileSync(secretFile, 'utf8'), before);
  // Only the .pub exists: still refused, and no .key is left behind.
  writeFileSync(join(dir, 'half.pub'), 'x');
  assert.throws(() => writeKeyPair(join(dir, 'half'), generateKeyPair()), isConfigError(/half\.pub/));
  assert.equal(existsSync(join(dir, 'half.key')), false);

  // A file holding only the bare secret (as other ZeroMQ tools write it) is a pair too.
  writeFileSync(join(dir, 'bare.key'), `# comment\n\n${pair.secretKey}\n`);
  assert.deepEqual(readKeyPair(join(dir, 'bare.key')), pair);

  const other = generateKeyPair();
  writeFileSync(join(dir, 'mixed.key'), `public-key = ${other.publicKey}\nsecret-key = ${pair.secretKey}\n`);
  assert.throws(() => readKeyPair(join(dir, 'mixed.key')), isConfigError(/does not belong to the secret key/));
});

test('bad keys are CONFIG errors that never echo a secret', () => {
  const dir = tempDir('m2gate-curve-');
  const pair = generateKeyPair();
  const almost = `${pair.secretKey.slice(0, 39)}"`;
  writeFileSync(join(dir, 'bad.key'), `secret-key = ${almost}\n`);
  assert.throws(
    () => readKeyPair(join(dir, 'bad.key')),
    (err: unknown) => isConfigError(/line 1 is not a 40-character Z85/)(err) && !(err as Error).message.includes(almost.slice(0, 30)),
  );
  assert.throws(
    () => resolveCurveConfig({ secret: almost }, {}),
    (err: unknown) => isConfigError(/neither a 40-character Z85 key nor an existing file/)(err) && !(err as Error).message.includes(almost.slice(0, 30)),
  );
  assert.throws(() => readKeyPair(join(dir, 'missing.key')), isConfigError(/cannot read CURVE key file/));
  assert.throws(() => readPublicKey('not-a-key'), isConfigError(/'not-a-key' is neither/));
  writeFileSync(join(dir, 'two.pub'), `${generateKeyPair().publicKey}\n${generateKeyPair().publicKey}\n`);
  assert.throws(() => readPublicKey(join(dir, 'two.pub')), isConfigError(/exactly one public key \(found 2\)/));
  // Secrets stay on the host that owns them: a .key is refused where a public key is wanted.
  const { secretFile } = writeKeyPair(join(dir, 'gw'), pair);
  assert.throws(() => readPublicKey(secretFile), isConfigError(/holds a secret key/));
  assert.throws(() => readAllowList([secretFile]), isConfigError(/holds a secret key/));
  writeFileSync(join(dir, 'junk.allow'), 'hello world\n');
  assert.throws(() => readAllowList([join(dir, 'junk.allow')]), isConfigError(/line 1 is not a 40-character Z85 CURVE key: 'hello world'/));
});

test('settings: flags win over M2GATE_CURVE_* env; files or Z85; allow-lists merge; off without a secret', () => {
  const dir = tempDir('m2gate-curve-');
  const gw = generateKeyPair();
  const svc = generateKeyPair();
  const a = generateKeyPair();
  const b = generateKeyPair();
  const { secretFile } = writeKeyPair(join(dir, 'svc'), svc);
  const { publicFile: gwPub } = writeKeyPair(join(dir, 'gw'), gw);
  writeFileSync(join(dir, 'clients.allow'), `# services\npublic-key = ${a.publicKey}\n${b.publicKey}\n`);

  assert.equal(resolveCurveConfig({}, {}), undefined);
  assert.equal(resolveCurveConfig({ secret: '' }, { M2GATE_CURVE_SECRET: '' }), undefined);

  const client = resolveCurveConfig({}, { M2GATE_CURVE_SECRET: secretFile, M2GATE_CURVE_SERVER_KEY: gwPub });
  assert.deepEqual(client, { pair: svc, serverKey: gw.publicKey });
  assert.deepEqual(clientSocketOptions(client), {
    curveServer: false,
    curveSecretKey: svc.secretKey,
    curvePublicKey: svc.publicKey,
    curveServerKey: gw.publicKey,
  });

  const env = { M2GATE_CURVE_SECRET: secretFile, M2GATE_CURVE_ALLOW: `${svc.publicKey}, ${join(dir, 'clients.allow')},${a.publicKey}` };
  const server = resolveCurveConfig({}, env);
  assert.deepEqual(server?.pair, svc);
  assert.deepEqual(server?.allow, [svc.publicKey, a.publicKey, b.publicKey]);
  assert.deepEqual(serverSocketOptions(server), curveServerOptions(svc));
  assert.deepEqual(curveServerOptions(svc), { curveServer: true, curveSecretKey: svc.secretKey, zapDomain: 'm2gate', zapEnforceDomain: true });

  // Flags (Z85 given directly) win over the environment.
  const flagged = resolveCurveConfig({ secret: gw.secretKey, allow: [b.publicKey] }, env);
  assert.deepEqual(flagged, { pair: gw, allow: [b.publicKey] });

  assert.deepEqual([serverSocketOptions(undefined), clientSocketOptions(undefined)], [{}, {}]);
  assert.throws(() => clientSocketOptions(server), isConfigError(/server's public key is missing/));
  assert.throws(() => resolveCurveConfig({}, { M2GATE_CURVE_ALLOW: a.publicKey }), isConfigError(/without a secret key/));
  assert.throws(() => resolveCurveConfig({ serverKey: gw.publicKey }, {}), isConfigError(/without a secret key/));
  writeFileSync(join(dir, 'empty.allow'), '# nobody yet\n');
  assert.throws(() => resolveCurveConfig({ secret: secretFile, allow: join(dir, 'empty.allow') }, {}), isConfigError(/holds no keys/));
  assert.throws(() => resolveCurveConfig({ secret: secretFile, allow: 'nope' }, {}), isConfigError(/'nope' is neither/));
});

// --- the allow-list on live sockets ----------------------------------------------

// First of the socket tests on purpose: it needs a process where no ZAP
// handler was ever bound. A router closed moments ago can still hold the inproc
// name (libzmq releases it on its reaper thread); a handshake that reaches it
// then waits for an answer that never comes instead of failing at once.
test('fail closed: with no authenticator running, even a listed key is refused', { timeout: 20_000 }, async () => {
  const server = generateKeyPair();
  const client = generateKeyPair();
  // zapEnforceDomain makes libzmq refuse when no handler is bound, instead of admitting all.
  const lonely = track(new Pull(curveServerOptions(server)));
  await lonely.bind('tcp://127.0.0.1:*');
  const refused = nextEvent(lonely, 'handshake:error:other');
  const c1 = track(new Push(curveClientOptions(client, server.publicKey)));
  c1.connect(lonely.lastEndpoint!);
  await refused;
  await closeAll(c1, lonely);
});

test('a ZAP domain with no allow-list: even a listed key is refused', { timeout: 20_000 }, async () => {
  const server = generateKeyPair();
  const client = generateKeyPair();
  const decisions: ZapDecision[] = [];
  const zap = await startZapAuthenticator({ allow: [client.publicKey], onDecision: (d) => decisions.push(d) });
  const other = track(new Pull(curveServerOptions(server, 'elsewhere')));
  try {
    await other.bind('tcp://127.0.0.1:*');
    const denied = nextEvent(other, 'handshake:error:auth');
    const c2 = track(new Push(curveClientOptions(client, server.publicKey)));
    c2.connect(other.lastEndpoint!);
    assert.equal((await denied).error.status, 400);
    assert.deepEqual(decisions, [], 'the m2gate domain was not asked');
    assert.equal(zap.stats.denied, 0);
    await closeAll(c2);
  } finally {
    await closeAll(other, zap);
  }
});

test('PULL as CURVE server: the allowed key gets through; a valid unlisted key and a plain client do not', { timeout: 20_000 }, async () => {
  const server = generateKeyPair();
  const good = generateKeyPair();
  const bad = generateKeyPair();
  const decisions: ZapDecision[] = [];
  const { lines, log } = logSink();
  const zap = await startZapAuthenticator({ allow: [good.publicKey], log, onDecision: (d) => decisions.push(d) });
  const pull = track(new Pull(curveServerOptions(server)));
  try {
    await pull.bind('tcp://127.0.0.1:*');
    const endpoint = pull.lastEndpoint!;
    assert.equal(pull.securityMechanism, 'curve');

    // A valid CURVE client whose key is not listed: ZAP says 400.
    const intruder = track(new Push(curveClientOptions(bad, server.publicKey)));
    const denied = nextEvent(pull, 'handshake:error:auth');
    const refusedAtClient = nextEvent(intruder, 'handshake:error:auth');
    intruder.connect(endpoint);
    await trySend(intruder, 'injected by an unlisted key');
    assert.equal((await denied).error.status, 400);
    assert.equal((await refusedAtClient).error.status, 400);
    assert.ok(zap.stats.denied >= 1);
    assert.equal(zap.stats.allowed, 0);
    assert.deepEqual(
      { ...decisions[0], address: undefined },
      { allowed: false, domain: 'm2gate', address: undefined, mechanism: 'CURVE', clientKey: bad.publicKey, reason: 'public key not in the allow-list' },
    );
    const warn = lines.find((l) => l.level === 'warn');
    assert.equal(warn?.fields.clientKey, bad.publicKey);
    assert.match(warn?.msg ?? '', /CURVE client denied/);

    // A plain (NULL) client fails the handshake before ZAP is even asked.
    const plain = track(new Push());
    const mismatch = nextEvent(pull, 'handshake:error:protocol');
    plain.connect(endpoint);
    await trySend(plain, 'injected in plain text');
    assert.equal((await mismatch).error.code, 'ERR_ZMTP_MECHANISM_MISMATCH');

    // The allowed client: its messages, and only its, arrive.
    const member = track(new Push(curveClientOptions(good, server.publicKey)));
    member.connect(endpoint);
    await member.send('one');
    assert.equal((await pull.receive())[0]?.toString(), 'one');
    await trySend(intruder, 'injected again');
    await trySend(plain, 'injected again');
    await member.send('two');
    assert.equal((await pull.receive())[0]?.toString(), 'two');
    assert.equal(zap.stats.allowed, 1);
    assert.ok(decisions.some((d) => d.allowed && d.clientKey === good.publicKey));
    assert.ok(!decisions.some((d) => d.allowed && d.clientKey !== good.publicKey));
    await closeAll(intruder, plain, member);
  } finally {
    await closeAll(pull, zap);
  }
});

test('SUB as CURVE server (the gateway side of recv_spec): an unlisted or plain PUB cannot inject replies', { timeout: 20_000 }, async () => {
  const gateway = generateKeyPair();
  const service = generateKeyPair();
  const attacker = generateKeyPair();
  const zap = await startZapAuthenticator({ allow: [service.publicKey] });
  const sub = track(new Subscriber(curveServerOptions(gateway)));
  try {
    sub.subscribe();
    await sub.bind('tcp://127.0.0.1:*');
    const endpoint = sub.lastEndpoint!;

    const evil = track(new Publisher(curveClientOptions(attacker, gateway.publicKey)));
    const denied = nextEvent(evil, 'handshake:error:auth');
    evil.connect(endpoint);
    assert.equal((await denied).error.status, 400);
    // A plain PUB, as any Mongrel2 handler connects, fails the handshake.
    const plain = track(new Publisher());
    const mismatch = nextEvent(sub, 'handshake:error:protocol');
    plain.connect(endpoint);
    await mismatch;

    // The listed service publishes; the attackers publish in between, every
    // round, until 20 messages have arrived. A PUB drops what it sends before
    // the SUB's subscription reaches it, so the loop ends on what arrives, not
    // on a guess of when the subscription is in effect.
    const pub = track(new Publisher(curveClientOptions(service, gateway.publicKey)));
    pub.connect(endpoint);
    const received: string[] = [];
    const collecting = (async () => {
      while (received.length < 20) received.push((await sub.receive())[0]?.toString() ?? '');
    })();
    let round = 0;
    let done = false;
    void collecting.finally(() => (done = true));
    while (!done) {
      await evil.send(`forged ${round}`);
      await plain.send(`forged in plain text ${round}`);
      await pub.send(`reply ${round++}`);
      await new Promise((resolve) => setImmediate(resolve));
    }
    await collecting;
    assert.equal(received.length, 20);
    const rounds = received.map((m) => /^reply (\d+)$/.exec(m)?.[1]);
    assert.ok(rounds.every((r) => r !== undefined), `only the listed service's messages arrive: ${received.join(', ')}`);
    assert.deepEqual(rounds.map(Number), [...rounds.map(Number)].sort((x, y) => x - y), 'in the order sent');
    assert.equal(zap.stats.allowed, 1);
    assert.ok(zap.stats.denied >= 1);
    await closeAll(evil, pub, plain);
  } finally {
    await closeAll(sub, zap);
  }
});

test('authenticators: one per domain, rebindable after close, and a server config needs an allow-list', { timeout: 20_000 }, async () => {
  const first = await startZapAuthenticator({ allow: [] });
  await assert.rejects(startZapAuthenticator({ allow: [] }), isConfigError(/domain 'm2gate' is already running/));
  const second = await startZapAuthenticator({ allow: [], domain: 'other' });
  await first.close();
  await first.close();
  await second.close();
  // Everything closed: the ZAP endpoint can be bound again.
  const again = await startZapAuthenticator({ allow: [] });
  await again.close();

  const pair = generateKeyPair();
  assert.equal(await startCurveAuthenticator(undefined), undefined);
  await assert.rejects(startCurveAuthenticator({ pair }), isConfigError(/no client allow-list/));
  await assert.rejects(startZapAuthenticator({ allow: ['not a key'] }), isConfigError(/'not a key' is neither/));
});

// --- m2gate keygen ----------------------------------------------------------------

test('m2gate keygen --out writes PREFIX.key (0600) and PREFIX.pub, prints the public key, never overwrites', { timeout: 60_000 }, async () => {
  const dir = tempDir('m2gate-keygen-');
  const prefix = join(dir, 'x');
  const res = await runCli(['keygen', '--out', prefix]);
  assert.equal(res.code, 0, res.stderr);
  assert.match(res.stdout, /^[0-9a-zA-Z.\-:+=^!/*?&<>()[\]{}@%$#]{40}\n$/);
  const publicKey = res.stdout.trim();
  const pair = readKeyPair(`${prefix}.key`);
  assert.equal(pair.publicKey, publicKey);
  assert.equal(readPublicKey(`${prefix}.pub`), publicKey);
  assert.equal(statSync(`${prefix}.key`).mode & 0o777, 0o600);
  assert.match(res.stderr, /wrote .*x\.key .* and .*x\.pub/);

  const again = await runCli(['keygen', '--out', prefix]);
  assert.equal(again.code, 1);
  assert.equal(again.stdout, '');
  assert.match(again.stderr, /refusing to overwrite .*x\.key/);
  assert.equal(readKeyPair(`${prefix}.key`).secretKey, pair.secretKey);

  // Default prefix: ./m2gate.key in the working directory.
  const { stdout } = await run(process.execPath, [M2GATE_BIN, 'keygen'], { cwd: dir, timeout: 10_000 });
  assert.equal(readKeyPair(join(dir, 'm2gate.key')).publicKey, stdout.trim());

  const help = await runCli(['keygen', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^Usage: m2gate keygen \[--out PREFIX\]/);
  const top = await runCli(['--help']);
  assert.match(top.stdout, /keygen \[--out PREFIX\]/);
  const bad = await runCli(['keygen', '--bogus']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /bogus/);
});
