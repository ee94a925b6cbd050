// Micro-benchmark: parsing a typical Mongrel2 header map as a tnetstring
// (our codec) against JSON.parse of the same map in Mongrel2's JSON encoding.
// Both start from the bytes of a captured message, as a handler receives them.
//   node --import tsx bench/protocol.ts [--json FILE]
import { writeFileSync } from 'node:fs';
import { run, bench, summary } from 'mitata';
import { decodeHeaderMap, parseRequest, encodeRequest } from '../protocol/m2-request.js';
import { decode } from '../protocol/tnetstring.js';
import { fixture } from '../test/helpers/fixtures.js';

const tnetMsg = fixture('req-get-query.tnet.bin');
const jsonMsg = fixture('req-get-query.json.bin');

// Just the header blocks, located with the codec itself.
function headerBlock(msg: Buffer): Buffer {
  let spaces = 0;
  let i = 0;
  while (spaces < 3) if (msg[i++] === 0x20) spaces++;
  const colon = msg.indexOf(0x3a, i);
  const size = Number(msg.toString('latin1', i, colon));
  return msg.subarray(i, colon + 1 + size + 1);
}
const tnetBlock = headerBlock(tnetMsg);
const jsonBlock = headerBlock(jsonMsg);
const jsonText = jsonBlock.subarray(jsonBlock.indexOf(0x3a) + 1, jsonBlock.length - 1);
const tnetData = tnetBlock.indexOf(0x3a) + 1;
const parsed = parseRequest(tnetMsg);

let sink: unknown;
summary(() => {
  bench('tnetstring header map: decodeHeaderMap(bytes)', () => {
    sink = decodeHeaderMap(tnetBlock, tnetData, tnetBlock.length - 1);
  });
  bench('tnetstring header map: generic decode(bytes)', () => {
    sink = decode(tnetBlock, { strings: 'utf8' });
  });
  bench('JSON header map: JSON.parse(bytes.toString())', () => {
    sink = JSON.parse(jsonText.toString('utf8'));
  });
});
summary(() => {
  bench('whole request, tnetstring headers: parseRequest', () => {
    sink = parseRequest(tnetMsg);
  });
  bench('whole request, JSON headers: parseRequest', () => {
    sink = parseRequest(jsonMsg);
  });
});
summary(() => {
  bench('encodeRequest tnetstring', () => {
    sink = encodeRequest(parsed, 'tnetstring');
  });
  bench('encodeRequest json', () => {
    sink = encodeRequest(parsed, 'json');
  });
});

const jsonOut = process.argv.indexOf('--json');
const results = await run({ format: jsonOut > 0 ? 'quiet' : 'mitata' });
if (jsonOut > 0) writeFileSync(process.argv[jsonOut + 1]!, JSON.stringify(results, null, 1));
void sink;
