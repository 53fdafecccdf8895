// An independent JavaScript Hivemind DHT peer for the interop tests (doc/interop.md "Hivemind").
// Written from Hivemind's sources, learning-at-home/hivemind @ 4bd43b7, NOT from our C code:
//   hivemind/p2p/p2p_daemon.py, hivemind/p2p/p2p_daemon_bindings/control.py   (RPC wire)
//   go-libp2p-daemon v0.5.0.hivemind1 p2pd/persistent_stream.go               (unary envelope)
//   hivemind/dht/protocol.py        (DHTProtocol.rpc_ping / rpc_store / rpc_find)
//   hivemind/dht/storage.py, hivemind/utils/timed_storage.py  (TimedStorage, DictionaryDHTValue)
//   hivemind/dht/routing.py         (DHTID = SHA-1 of msgpack(key), XOR distance)
//   hivemind/utils/serializer.py    (MSGPackSerializer: tuple = ext 0x40)
// Messages come from the repository's proto/hivemind/*.proto (Hivemind's field numbers), loaded
// at run time with protobufjs; msgpack is @msgpack/msgpack with Hivemind's ext types.
import { createHash, randomBytes } from 'node:crypto'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import protobuf from 'protobufjs'
import { Encoder, Decoder, ExtensionCodec } from '@msgpack/msgpack'

if (typeof Promise.withResolvers !== 'function') {
  // libp2p 3.x targets Node 22; this is the only piece Node 20 lacks.
  Promise.withResolvers = function () {
    let resolve, reject
    const promise = new Promise((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}

const here = dirname(fileURLToPath(import.meta.url))
const protoDir = resolve(here, '../../proto')

// ---- protobuf (proto/hivemind/dht.proto, p2pd.proto) -------------------------------------
const root = new protobuf.Root()
root.resolvePath = (origin, target) => resolve(protoDir, target)
root.loadSync(['hivemind/dht.proto', 'hivemind/p2pd.proto'], { keepCase: true })
const T = (n) => root.lookupType(n)
export const pb = {
  PingRequest: T('kw.hivemind.PingRequest'),
  PingResponse: T('kw.hivemind.PingResponse'),
  StoreRequest: T('kw.hivemind.StoreRequest'),
  StoreResponse: T('kw.hivemind.StoreResponse'),
  FindRequest: T('kw.hivemind.FindRequest'),
  FindResult: T('kw.hivemind.FindResult'),
  FindResponse: T('kw.hivemind.FindResponse'),
  Envelope: T('kw.hivemind.p2pd.PersistentConnectionRequest'),
  RPCError: T('kw.hivemind.p2pd.RPCError')
}
export const NOT_FOUND = 0
export const FOUND_REGULAR = 1
export const FOUND_DICTIONARY = 2

export function encodePb (type, obj) { return Buffer.from(type.encode(type.fromObject(obj)).finish()) }
// Decoded messages as plain objects: bytes as Buffers, repeated fields always arrays,
// proto3 defaults filled in (as Python's generated classes read them).
export function decodePb (type, bytes) {
  return type.toObject(type.decode(bytes), { defaults: true, arrays: true, bytes: Buffer })
}

// ---- msgpack as hivemind/utils/serializer.py writes it ------------------------------------
// Python floats are always float64 (0xcb); JS numbers cannot say int or float, so a float is
// wrapped in F64. A tuple is ext 0x40 around the msgpack of its items. Raw bytes that already
// are msgpack (a subkey as received) are copied verbatim with Raw.
export class F64 { constructor (v) { this.v = v } }
export class Tuple { constructor (items) { this.items = items } }
export class Raw { constructor (bytes) { this.bytes = bytes } }
// DictionaryDHTValue (hivemind/dht/storage.py, ext 0x50): packb() =
// dumps([maxsize, latest_expiration_time, [[subkey, value, expiration_time], ...]]).
export class DictValue {
  constructor (maxsize, latest, items) { this.maxsize = maxsize; this.latest = latest; this.items = items }
}
// BatchTensorDescriptor (hivemind/utils/tensor_descr.py, ext 0x51): msgpack of its field dict.
export class BatchTensorDescriptor { constructor (fields) { this.fields = fields } }

class HmEncoder extends Encoder {
  encodeObject (object, depth) {
    if (object instanceof F64) { this.encodeNumberAsFloat(object.v); return }
    if (object instanceof Raw) {
      this.ensureBufferSizeToWrite(object.bytes.length)
      this.bytes.set(object.bytes, this.pos)
      this.pos += object.bytes.length
      return
    }
    super.encodeObject(object, depth)
  }
}

export const codec = new ExtensionCodec()
export function mpEncode (v) { return Buffer.from(new HmEncoder({ extensionCodec: codec }).encode(v)) }
export function mpDecode (b) { return new Decoder({ extensionCodec: codec }).decode(b) }
codec.register({
  type: 0x40,
  encode: (o) => (o instanceof Tuple ? mpEncode(o.items) : null),
  decode: (d) => new Tuple(mpDecode(d))
})
codec.register({
  type: 0x50,
  encode: (o) => (o instanceof DictValue
    ? mpEncode([new F64(o.maxsize), new F64(o.latest), o.items.map(([k, v, e]) => [k, v, new F64(e)])])
    : null),
  decode: (d) => { const [m, l, items] = mpDecode(d); return new DictValue(m, l, items) }
})
codec.register({
  type: 0x51,
  encode: (o) => (o instanceof BatchTensorDescriptor ? mpEncode(o.fields) : null),
  decode: (d) => new BatchTensorDescriptor(mpDecode(d))
})

// ---- DHTID (hivemind/dht/routing.py) ------------------------------------------------------
// DHTID.generate(source): SHA-1 of the raw bytes for a bytes key, of msgpack(key) otherwise.
export function dhtId (key) {
  const src = Buffer.isBuffer(key) ? key : mpEncode(key)
  return createHash('sha1').update(src).digest()
}
export const IS_REGULAR_VALUE = Buffer.from([0xc0])  // msgpack(None)
export const IS_DICTIONARY = Buffer.alloc(0)
function xorLess (q, a, b) {  // is a nearer to q than b (big-endian XOR distance)?
  for (let i = 0; i < 20; i++) {
    const x = (a[i] ?? 0) ^ (q[i] ?? 0); const y = (b[i] ?? 0) ^ (q[i] ?? 0)
    if (x !== y) return x < y
  }
  return false
}

// ---- unary envelope: go-libp2p-daemon persistent_stream.go + control.py --------------------
// Every frame is uvarint(len) || PersistentConnectionRequest. A call carries callUnary{peer,
// proto, data} (proto2 required: all present, even empty); the reply is a
// PersistentConnectionRequest (not ...Response) with unaryResponse{response | error}.
export const MAX_UNARY = 4 * 1024 * 1024  // hivemind's persistent_conn_max_msg_size

function uvarint (n) {
  const out = []
  do { let b = n & 0x7f; n = Math.floor(n / 128); if (n) b |= 0x80; out.push(b) } while (n)
  return Buffer.from(out)
}
// -> [value, bytes used] or null when more bytes are needed
function readUvarint (buf) {
  let v = 0; let mul = 1
  for (let i = 0; i < buf.length && i < 10; i++) {
    v += (buf[i] & 0x7f) * mul
    if (!(buf[i] & 0x80)) return [v, i + 1]
    mul *= 128
  }
  if (buf.length >= 10) throw new Error('bad uvarint length prefix')
  return null
}
export function frameEnvelope (obj) {
  const body = encodePb(pb.Envelope, obj)
  return Buffer.concat([uvarint(body.length), body])
}
export function encodeCall (callId, calleePeer, proto, data) {
  return frameEnvelope({ callId, callUnary: { peer: calleePeer, proto, data } })
}
export function encodeResponse (callId, response) {
  return frameEnvelope({ callId, unaryResponse: { response } })
}
export function encodeError (callId, text) {
  return frameEnvelope({ callId, unaryResponse: { error: Buffer.from(text, 'utf8') } })
}
// Parses one envelope from buf: {env, used} or null (incomplete). Throws on a bad prefix or
// an envelope over MAX_UNARY (p2pd's delimited reader refuses it).
export function decodeEnvelope (buf) {
  const v = readUvarint(buf)
  if (!v) return null
  const [len, n] = v
  if (len > MAX_UNARY) throw new Error(`envelope of ${len} bytes exceeds ${MAX_UNARY}`)
  if (buf.length < n + len) return null
  const env = pb.Envelope.toObject(pb.Envelope.decode(buf.subarray(n, n + len)), { bytes: Buffer })
  if (!env.callId || env.callId.length !== 16) throw new Error('callId is not 16 bytes')
  return { env, used: n + len }
}

// ---- stream framing: hivemind/p2p/p2p_daemon.py send/receive_protobuf ---------------------
// marker (0x00 message, 0x01 RPCError) || 8-byte big-endian length || protobuf.
export function encodeFrame (marker, payload) {
  const h = Buffer.alloc(9)
  h[0] = marker
  h.writeBigUInt64BE(BigInt(payload.length), 1)
  return Buffer.concat([h, payload])
}
export const END_OF_STREAM = encodeFrame(1, Buffer.alloc(0))
export function encodeErrorFrame (message) { return encodeFrame(1, encodePb(pb.RPCError, { message })) }

// ---- reading a libp2p 3.x stream without ending it ----------------------------------------
// A unary caller must not half-close or send more after its request (p2pd treats that as a
// cancel), so reads pull from the stream's iterator directly and never return() it.
export class Reader {
  constructor (stream) { this.it = stream[Symbol.asyncIterator](); this.buf = Buffer.alloc(0); this.eof = false }
  async more () {
    const r = await this.it.next()
    if (r.done) { this.eof = true; return false }
    const c = r.value.subarray ? r.value.subarray() : r.value
    this.buf = Buffer.concat([this.buf, Buffer.from(c)])
    return true
  }
  async envelope () {
    for (;;) {
      const d = decodeEnvelope(this.buf)
      if (d) { this.buf = this.buf.subarray(d.used); return d.env }
      if (!(await this.more())) throw new Error('stream ended before a whole envelope')
    }
  }
}

// ---- storage: hivemind/utils/timed_storage.py + hivemind/dht/storage.py -------------------
// Keys are DHTID hex strings; a record is {value, exp} where value is a Buffer or a SubDict.
class SubDict {  // DictionaryDHTValue: subkey (raw msgpack hex) -> {raw, value, exp}
  constructor () { this.items = new Map(); this.latest = -Infinity }
  store (subRaw, value, exp, now) {
    this.latest = Math.max(this.latest, exp)  // storage.py: even when the store is refused
    return timedStore(this.items, subRaw.toString('hex'), { raw: subRaw, value, exp }, now)
  }
  live (now) {
    for (const [k, e] of this.items) if (e.exp < now) this.items.delete(k)
    return [...this.items.values()]
  }
  pack (now) {  // DictionaryDHTValue.packb, maxsize = +inf
    return mpEncode(new DictValue(Infinity, this.latest,
      this.live(now).map((e) => [new Raw(e.raw), e.value, e.exp])))
  }
}
// TimedStorage.store: refuse an expired record; an existing key only takes a strictly later one.
function timedStore (map, key, entry, now) {
  if (entry.exp < now) return false
  const old = map.get(key)
  if (old && old.exp >= now && !(old.exp < entry.exp)) return false
  map.set(key, entry)
  return true
}
export class TimedStorage {
  constructor (clock) { this.data = new Map(); this.clock = clock }
  get (id) {
    const k = id.toString('hex'); const e = this.data.get(k)
    if (e && e.exp < this.clock()) { this.data.delete(k); return null }
    return e ?? null
  }
  store (id, value, exp) { return timedStore(this.data, id.toString('hex'), { value, exp }, this.clock()) }
  // DHTLocalStorage.store_subkey
  storeSubkey (id, subRaw, value, exp) {
    const now = this.clock(); const prev = this.get(id)
    if (!prev || (Buffer.isBuffer(prev.value) && exp > prev.exp)) {
      const d = new SubDict()
      d.store(subRaw, value, exp, now)
      return this.store(id, d, d.latest)
    }
    if (prev.value instanceof SubDict) {
      if (exp > prev.value.latest) prev.exp = exp  // refresh the outer expiration
      return prev.value.store(subRaw, value, exp, now)
    }
    return false
  }
}

// ---- the libp2p node ---------------------------------------------------------------------
const { createLibp2p } = await import('libp2p')
const { tcp } = await import('@libp2p/tcp')
const { noise } = await import('@chainsafe/libp2p-noise')
const { yamux } = await import('@chainsafe/libp2p-yamux')
const { identify } = await import('@libp2p/identify')
const { generateKeyPair } = await import('@libp2p/crypto/keys')
const { multiaddr } = await import('@multiformats/multiaddr')
const { peerIdFromString } = await import('@libp2p/peer-id')
export { multiaddr, peerIdFromString }

export const PING = 'DHTProtocol.rpc_ping'
export const STORE = 'DHTProtocol.rpc_store'
export const FIND = 'DHTProtocol.rpc_find'

export async function createNode ({ listen = ['/ip4/127.0.0.1/tcp/0'] } = {}) {
  return createLibp2p({
    privateKey: await generateKeyPair('Ed25519'),  // what p2pd generates without -id
    addresses: { listen },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify() },
    connectionManager: { inboundConnectionThreshold: 1e9, maxIncomingPendingConnections: 100 },
    connectionMonitor: { enabled: false }
  })
}

// Calls a unary handler on `target` (PeerId or multiaddr) as p2pd does for Python's
// call_protobuf_handler: one stream named after the handler, one envelope each way, close
// after the reply. Returns the response bytes; a remote error throws HandlerError(text).
export class HandlerError extends Error {}
export async function callUnary (node, target, name, data, timeoutMs = 3000) {
  const signal = AbortSignal.timeout(timeoutMs)
  const stream = await node.dialProtocol(target, name, { signal })
  try {
    const callId = randomBytes(16)
    // CallUnaryRequest.peer = the callee's PeerID bytes (the responder's daemon overwrites it)
    const p2p = typeof target.toMultihash === 'function' ? null : String(target).match(/\/p2p\/([^/]+)/)
    const callee = typeof target.toMultihash === 'function' ? target.toMultihash().bytes
      : p2p ? peerIdFromString(p2p[1]).toMultihash().bytes : Buffer.alloc(0)
    stream.send(encodeCall(callId, callee, name, data))
    const env = await Promise.race([new Reader(stream).envelope(), new Promise((_, rej) =>
      signal.addEventListener('abort', () => rej(new Error(`${name}: no reply within ${timeoutMs} ms`))))])
    if (!Buffer.from(env.callId).equals(callId)) throw new Error('reply has another callId')
    const r = env.unaryResponse
    if (!r) throw new Error('reply carries no unaryResponse')
    if (r.error != null) throw new HandlerError(Buffer.from(r.error).toString('utf8'))
    if (r.response == null) throw new Error('unaryResponse has neither response nor error')
    return Buffer.from(r.response)
  } finally {
    await stream.close().catch(() => {})
  }
}

// Serves a unary handler: fn(requestBytes, connection) -> response bytes; a thrown error is
// answered with repr(exception) as control.py does (err.pyRepr, else "Exception('<msg>')").
export async function serveUnary (node, name, fn, onBad = () => {}) {
  await node.handle(name, async (stream, connection) => {
    let env
    try {
      env = await new Reader(stream).envelope()
      if (!env.callUnary) throw new Error('envelope is not a callUnary')
      if (env.callUnary.proto !== name) throw new Error(`callUnary.proto ${env.callUnary.proto} != ${name}`)
    } catch (e) {
      onBad(e)
      stream.abort(e)  // p2pd drops a bad frame and resets the stream
      return
    }
    let reply
    try {
      reply = encodeResponse(env.callId, await fn(Buffer.from(env.callUnary.data ?? []), connection))
    } catch (e) {
      onBad(e)
      reply = encodeError(env.callId, e.pyRepr ?? `Exception('${e.message}')`)
    }
    stream.send(reply)
    await stream.close().catch(() => {})
  }, { runOnLimitedConnection: false })
}

// A Python exception as hivemind's caller sees it: repr(e).
export function pyError (repr) { const e = new Error(repr); e.pyRepr = repr; return e }

// ---- DHTProtocol (hivemind/dht/protocol.py) -----------------------------------------------
export class DhtPeer {
  constructor (node, { nodeId = dhtId(randomBytes(255)), clock = () => Date.now() / 1000, bucketSize = 20 } = {}) {
    this.node = node
    this.nodeId = nodeId   // DHTID.generate(): random, not derived from the PeerID
    this.clock = clock
    this.bucketSize = bucketSize
    this.storage = new TimedStorage(clock)
    this.cache = new TimedStorage(clock)
    this.contacts = new Map()  // node id hex -> {id, peer (PeerId)}; a flat "routing table"
    this.stats = { pings: 0, stores: 0, finds: 0, bad: 0 }
    this.log = []              // what the server saw, for the tests: [name, request object]
  }

  info () { return { node_id: this.nodeId } }

  meet (peerInfo, connection) {  // update_routing_table for a caller that sent its node id
    if (peerInfo?.node_id?.length && !peerInfo.node_id.equals(this.nodeId)) {
      this.contacts.set(peerInfo.node_id.toString('hex'), { id: peerInfo.node_id, peer: connection.remotePeer })
    }
  }

  async start () {
    const bad = () => { this.stats.bad++ }
    await serveUnary(this.node, PING, (b, c) => this.rpcPing(b, c), bad)
    await serveUnary(this.node, STORE, (b, c) => this.rpcStore(b, c), bad)
    await serveUnary(this.node, FIND, (b, c) => this.rpcFind(b, c), bad)
  }

  async rpcPing (bytes, connection) {
    this.stats.pings++
    const req = decodePb(pb.PingRequest, bytes)
    this.log.push([PING, req])
    const resp = { peer: this.info(), dht_time: this.clock(), available: false }
    if (req.peer?.node_id?.length) {
      if (req.validate) {  // ping the caller back: available = it answered with the same id
        try {
          const back = await this.callPing(connection.remotePeer, false)
          resp.available = back.peer?.node_id?.equals(req.peer.node_id) ?? false
        } catch { resp.available = false }
      }
      if (resp.available || !req.validate) this.meet(req.peer, connection)
    }
    return encodePb(pb.PingResponse, resp)
  }

  async rpcStore (bytes, connection) {
    this.stats.stores++
    const req = decodePb(pb.StoreRequest, bytes)
    this.log.push([STORE, req])
    if (req.peer) this.meet(req.peer, connection)
    const n = req.keys.length
    // protocol.py: a bare assert, so the caller sees "AssertionError()"
    if (!(req.values.length === n && req.expiration_time.length === n && req.in_cache.length === n)) {
      throw pyError('AssertionError()')
    }
    const ok = []
    for (let i = 0; i < Math.min(n, req.subkeys.length); i++) {  // zip() drops the surplus
      const id = req.keys[i]; const tag = req.subkeys[i]; const v = req.values[i]
      const st = req.in_cache[i] ? this.cache : this.storage
      if (tag.length === 0) {  // IS_DICTIONARY: merge every entry of a DictionaryDHTValue
        const d = mpDecode(v)
        if (!(d instanceof DictValue)) throw pyError('AssertionError()')
        const now = this.clock()
        let all = true
        for (const [sub, val, exp] of d.items) {
          if (exp < now) continue
          if (!st.storeSubkey(id, mpEncode(sub), Buffer.from(val), exp)) { all = false; break }
        }
        ok.push(all)
      } else if (tag.equals(IS_REGULAR_VALUE)) {
        ok.push(st.store(id, v, req.expiration_time[i]))
      } else {
        ok.push(st.storeSubkey(id, tag, v, req.expiration_time[i]))
      }
    }
    return encodePb(pb.StoreResponse, { store_ok: ok, peer: this.info() })
  }

  // rpc_find's value for one key: the main storage's record, or the cache's when it expires later
  lookup (id) {
    const e = this.storage.get(id); const c = this.cache.get(id)
    return c && (!e || c.exp > e.exp) ? c : e
  }

  result (e) {  // FindResult fields of a record (or of none)
    if (!e) return { type: NOT_FOUND }
    if (e.value instanceof SubDict) return { type: FOUND_DICTIONARY, value: e.value.pack(this.clock()), expiration_time: e.exp }
    return { type: FOUND_REGULAR, value: e.value, expiration_time: e.exp }
  }

  async rpcFind (bytes, connection) {
    this.stats.finds++
    const req = decodePb(pb.FindRequest, bytes)
    this.log.push([FIND, req])
    if (req.peer) this.meet(req.peer, connection)
    const exclude = req.peer?.node_id ?? Buffer.alloc(0)
    const results = req.keys.map((id) => {
      const e = this.lookup(id)
      const near = [...this.contacts.values()]
        .filter((x) => !x.id.equals(exclude))
        .sort((a, b) => (xorLess(id, a.id, b.id) ? -1 : xorLess(id, b.id, a.id) ? 1 : 0))
        .slice(0, this.bucketSize)
      const r = { nearest_node_ids: near.map((x) => x.id), nearest_peer_ids: near.map((x) => x.peer.toMultihash().bytes) }
      return { ...this.result(e), ...r }
    })
    return encodePb(pb.FindResponse, { results, peer: this.info() })
  }

  // ---- client side (DHTProtocol.call_ping / call_store / call_find) ----
  async callPing (target, validate = false) {
    const r = await callUnary(this.node, target, PING, encodePb(pb.PingRequest, { peer: this.info(), validate }))
    return decodePb(pb.PingResponse, r)
  }

  // records: [{key (DHTID Buffer), subkey (raw msgpack Buffer; IS_REGULAR_VALUE / IS_DICTIONARY),
  //            value (Buffer), exp, inCache}]
  async callStore (target, records) {
    const req = {
      keys: records.map((r) => r.key),
      subkeys: records.map((r) => r.subkey ?? IS_REGULAR_VALUE),
      values: records.map((r) => r.value),
      expiration_time: records.map((r) => r.exp),
      in_cache: records.map((r) => !!r.inCache),
      peer: this.info()
    }
    return decodePb(pb.StoreResponse, await callUnary(this.node, target, STORE, encodePb(pb.StoreRequest, req)))
  }

  async callFind (target, keys) {
    const r = await callUnary(this.node, target, FIND, encodePb(pb.FindRequest, { keys, peer: this.info() }))
    return decodePb(pb.FindResponse, r)
  }
}

// ---- stream handlers: hivemind/p2p/p2p_daemon.py (_add_protobuf_stream_handler,
// _iterate_protobuf_stream_handler) -------------------------------------------------------
// Reads one frame: {marker, payload}, or null at a clean EOF between frames. An unknown
// marker throws (hivemind: TypeError("Invalid Protobuf message type")).
export async function readFrame (reader) {
  for (;;) {
    if (reader.buf.length >= 9) {
      const marker = reader.buf[0]
      if (marker !== 0 && marker !== 1) throw new Error(`invalid frame marker ${marker}`)
      const len = Number(reader.buf.readBigUInt64BE(1))
      if (reader.buf.length >= 9 + len) {
        const payload = Buffer.from(reader.buf.subarray(9, 9 + len))
        reader.buf = reader.buf.subarray(9 + len)
        return { marker, payload }
      }
    }
    if (!(await reader.more())) {
      if (reader.buf.length) throw new Error('stream ended inside a frame')
      return null
    }
  }
}

// Calls a stream handler as hivemind's caller does: every request as a 0x00 frame, then
// END_OF_STREAM, no half-close; responses until the server's EOF. An error frame throws
// HandlerError with P2PHandlerError's text ("Failed to call handler `<name>` at <peer>: <msg>").
export async function callStream (node, target, name, requests, timeoutMs = 5000) {
  const signal = AbortSignal.timeout(timeoutMs)
  const conn = await node.dial(target, { signal })
  const peer = conn.remotePeer.toString()   // Python formats the PeerID as base58
  const stream = await conn.newStream(name, { signal })
  try {
    for (const r of requests) stream.send(encodeFrame(0, r))
    stream.send(END_OF_STREAM)
    const rd = new Reader(stream)
    const out = []
    const aborted = new Promise((_, rej) =>
      signal.addEventListener('abort', () => rej(new Error(`${name}: no end within ${timeoutMs} ms`))))
    for (;;) {
      const f = await Promise.race([readFrame(rd), aborted])
      if (f === null) return out
      if (f.marker === 1) {
        const e = decodePb(pb.RPCError, f.payload)
        throw new HandlerError(`Failed to call handler \`${name}\` at ${peer}: ${e.message ?? ''}`)
      }
      out.push(f.payload)
    }
  } finally {
    await stream.close().catch(() => {})
  }
}

// Serves a stream handler: handler(requests, connection) is an async generator of response
// Buffers over an async iterator of request Buffers. At most maxPrefetch requests wait
// unread by the handler (hivemind's max_prefetch = 5; reading stops beyond it); any 0x01
// frame ends the requests; a caller EOF before the end cancels the handler; a thrown error
// becomes one RPCError{message: str(e)} frame. stats counts what happened.
export async function serveStream (node, name, handler, { maxPrefetch = 5, stats = {} } = {}) {
  stats.calls = stats.calls ?? 0; stats.bad = stats.bad ?? 0; stats.cancelled = stats.cancelled ?? 0
  stats.maxQueued = stats.maxQueued ?? 0
  await node.handle(name, async (stream, connection) => {
    stats.calls++
    const rd = new Reader(stream)
    const queue = []
    let ended = false; let cancelled = false; let waiters = []
    const wake = () => { const w = waiters; waiters = []; for (const f of w) f() }
    const wait = () => new Promise((resolve) => waiters.push(resolve))
    async function * requests () {
      for (;;) {
        if (queue.length) { const m = queue.shift(); wake(); yield m; continue }
        if (cancelled) throw new Error('cancelled by the caller')
        if (ended) return
        await wait()
      }
    }
    (async () => {
      try {
        for (;;) {
          while (queue.length >= maxPrefetch && !cancelled) await wait()
          const f = await readFrame(rd)
          if (f === null) { cancelled = true; wake(); return }
          if (f.marker === 1) { ended = true; wake(); continue }
          if (ended) continue
          queue.push(f.payload)
          stats.maxQueued = Math.max(stats.maxQueued, queue.length)
          wake()
        }
      } catch (e) { stats.bad++; cancelled = true; wake(); stream.abort(e) }
    })()
    try {
      for await (const resp of handler(requests(), connection)) stream.send(encodeFrame(0, resp))
    } catch (e) {
      if (cancelled && !ended) { stats.cancelled++; return }
      stream.send(encodeErrorFrame(e.message))
    }
    await stream.close().catch(() => {})
  }, { runOnLimitedConnection: false })
}
