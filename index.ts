// The public API of m2gate. Everything users may import is re-exported here by name.

// Errors
export { M2gateError, ProtocolError, ERRORS, ERROR_CODES, errorSpec, type ErrorCode, type ErrorKey, type ErrorLevel, type ErrorSpec } from './protocol/errors.js';

// tnetstrings
export {
  decode,
  decodePrefix,
  encode,
  encodedLength,
  TNET_DEFAULTS,
  type TnetValue,
  type TnetList,
  type TnetDict,
  type DecodeOptions,
  type EncodableValue,
  type StringMode,
} from './protocol/tnetstring.js';

// Mongrel2 requests and replies
export {
  parseRequest,
  encodeRequest,
  encodeDisconnect,
  REQUEST_KINDS,
  type M2Request,
  type RequestFields,
  type RequestKind,
  type HeaderMap,
  type HeaderValue,
  type HeaderEncoding,
  type ParseRequestOptions,
} from './protocol/m2-request.js';
export {
  parseReply,
  encodeReply,
  encodeClose,
  encodeControl,
  decodeControl,
  isCloseReply,
  type M2Reply,
  type ParseReplyOptions,
} from './protocol/m2-reply.js';

// The m2gate link's envelope (protocol/m2gate-link.md)
export { decodeBatchItem, decodeLink, encodeBatch, encodeLink, LINK_VERSION, type LinkMessage, type LinkCommand } from './protocol/link-frames.js';

// The brubeck-service wire format (docs/brubeck-service-wire.md)
export {
  decodeBrubeckRequest,
  decodeBrubeckResponse,
  encodeBrubeckRequest,
  encodeBrubeckResponse,
  parseBrubeckJson,
  BRUBECK_VERSIONS,
  BRUBECK_DEFAULTS,
  type BrubeckVersion,
  type BrubeckRequest,
  type BrubeckResponse,
  type BrubeckRequestFields,
  type BrubeckResponseFields,
  type BrubeckDecodeOptions,
} from './protocol/brubeck-wire.js';

// The HTTP response a handler writes
export {
  buildResponse,
  ResponseParser,
  type ResponseInit,
  type ParsedHead,
  type ResponseParserEvents,
  type ResponseParserOptions,
} from './protocol/http-response.js';

// mongrel2.conf and route patterns
export {
  parseConfig,
  findServer,
  settingInt,
  ConfigError,
  type Mongrel2Config,
  type ConfigServer,
  type ConfigHost,
  type ConfigTarget,
  type ConfigHandler,
  type ConfigDir,
  type ConfigProxy,
} from './protocol/mongrel2-conf.js';
export { compilePattern, type CompiledPattern } from './protocol/m2-pattern.js';

// Service routes (run on worker threads) and app routes (run in the gateway)
export {
  defineRoutes,
  type ServiceRequest,
  type ServiceResponse,
  type RouteHandler,
  type RouteOptions,
  type RouteResult,
  type RoutesDefinition,
  type WebSocketConnection,
  type WebSocketRef,
  type WebSocketRoute,
  type WebSocketOpenResult,
} from './workers/service-routes.js';
export type { UploadedFile } from './workers/upload-body.js';
export { webSocketSend, webSocketClose } from './workers/ws-worker.js';
// WebSocket framing (RFC 6455), as the gateway and WS routes use it
export { encodeFrame, FrameParser, acceptKey, closePayload, flagsHeader, flagsOpcode, OPCODES, CLOSE_CODES, type FrameParserEvents, type FrameParserOptions, type EncodeFrameOptions } from './protocol/ws-frame.js';
export { defineApp, type AppRequest, type AppContext, type AppHandler, type AppRouteOptions, type AppDefinition, type OnReply } from './gateway/app.js';
export type { CallInit, CallReply } from './gateway/handler/index.js';
export type { BrubeckReply } from './gateway/brubeck-client.js';
