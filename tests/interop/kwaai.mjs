// The /kwaai/ record namespace for js kad-dht nodes (kad-node.mjs): validator, selector and
// sealer, written from the format in doc/net-kad.md ("Records and providers", /kwaai/) and
// NOT from the C code, so the interop test checks the format, not one implementation twice.
//
// Value = KwaaiRecord protobuf { bytes publisher = 1 (libp2p PublicKey protobuf);
// uint64 seq = 2; uint64 expiry = 3 (Unix ms); bytes value = 4; bytes signature = 5 },
// each field exactly once, no other field. The signature, made as libp2p signs with the
// publisher's key type (@libp2p/crypto PublicKey.verify / PrivateKey.sign), covers
//   "kwaai-record:" || SHA-256(uvarint(len key) || key || be64(seq) || be64(expiry)
//                             || uvarint(len value) || value)
// A key whose segment after /kwaai/ parses as a peer ID may only be signed by that peer.
// Selector: the highest seq, ties to the lexicographically larger envelope.
import { createHash } from 'node:crypto'
import { publicKeyFromProtobuf, publicKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPublicKey, peerIdFromString } from '@libp2p/peer-id'

const PREFIX = Buffer.from('kwaai-record:')

function uvarint (n) {
  const out = []
  let v = BigInt(n)
  do {
    let b = Number(v & 0x7fn); v >>= 7n
    if (v) b |= 0x80
    out.push(b)
  } while (v)
  return Buffer.from(out)
}
function be64 (n) { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(n)); return b }

export function signedBytes (key, seq, expiry, value) {
  const h = createHash('sha256')
    .update(uvarint(key.length)).update(key)
    .update(be64(seq)).update(be64(expiry))
    .update(uvarint(value.length)).update(value)
    .digest()
  return Buffer.concat([PREFIX, h])
}

// Decodes the envelope strictly; throws naming what is wrong.
export function decodeEnvelope (buf) {
  buf = Buffer.from(buf)
  const f = {}
  let i = 0
  const varint = () => {
    let v = 0n; let s = 0n
    for (let n = 0; ; n++) {
      if (i >= buf.length || n >= 10) throw new Error('kwaai envelope: bad varint')
      const b = buf[i++]; v |= BigInt(b & 0x7f) << s; s += 7n
      if (!(b & 0x80)) return v
    }
  }
  const types = { 1: 2, 2: 0, 3: 0, 4: 2, 5: 2 }
  const names = { 1: 'publisher', 2: 'seq', 3: 'expiry', 4: 'value', 5: 'signature' }
  while (i < buf.length) {
    const tag = varint()
    const num = Number(tag >> 3n); const wt = Number(tag & 7n)
    if (!(num in types)) throw new Error(`kwaai envelope: unknown field ${num}`)
    if (types[num] !== wt) throw new Error(`kwaai envelope: field ${names[num]} has wire type ${wt}`)
    if (names[num] in f) throw new Error(`kwaai envelope: field ${names[num]} repeated`)
    if (wt === 0) f[names[num]] = varint()
    else {
      const len = Number(varint())
      if (len > buf.length - i) throw new Error(`kwaai envelope: field ${names[num]} runs past the end`)
      f[names[num]] = buf.subarray(i, i + len); i += len
    }
  }
  if (!f.publisher || !f.signature) throw new Error('kwaai envelope: unsigned')
  return { publisher: f.publisher, seq: f.seq ?? 0n, expiry: f.expiry ?? 0n, value: f.value ?? Buffer.alloc(0), signature: f.signature }
}

function ownerOf (key) {
  const s = Buffer.from(key).toString('latin1')
  if (!s.startsWith('/kwaai/')) throw new Error('kwaai: key is not under /kwaai/')
  const seg = s.slice(7).split('/')[0]
  try { return peerIdFromString(seg) } catch { return undefined }
}

export async function kwaaiValidate (key, value, nowMs = Date.now()) {
  const env = decodeEnvelope(value)
  if (env.expiry <= BigInt(nowMs)) throw new Error(`kwaai: record expired at ${env.expiry}`)
  const pub = publicKeyFromProtobuf(env.publisher)
  const owner = ownerOf(key)
  if (owner && !peerIdFromPublicKey(pub).equals(owner)) throw new Error(`kwaai: key belongs to ${owner} but ${peerIdFromPublicKey(pub)} signed it`)
  const ok = await pub.verify(signedBytes(Buffer.from(key), env.seq, env.expiry, env.value), env.signature)
  if (!ok) throw new Error('kwaai: signature does not verify')
}

export function kwaaiSelect (key, values) {
  let best = 0; let bestSeq = -1n
  values.forEach((v, idx) => {
    let seq
    try { seq = decodeEnvelope(v).seq } catch { return }
    if (seq > bestSeq || (seq === bestSeq && Buffer.compare(Buffer.from(v), Buffer.from(values[best])) > 0)) { best = idx; bestSeq = seq }
  })
  return best
}

// Builds a signed envelope with privateKey (an @libp2p/crypto private key).
export async function kwaaiSeal (privateKey, key, value, seq, expiry) {
  key = Buffer.from(key); value = Buffer.from(value)
  const sig = Buffer.from(await privateKey.sign(signedBytes(key, seq, expiry, value)))
  const pub = Buffer.from(publicKeyToProtobuf(privateKey.publicKey))
  const bytesField = (n, b) => Buffer.concat([uvarint((n << 3) | 2), uvarint(b.length), b])
  const intField = (n, v) => Buffer.concat([uvarint(n << 3), uvarint(v)])
  return Buffer.concat([bytesField(1, pub), intField(2, seq), intField(3, expiry), bytesField(4, value), bytesField(5, sig)])
}

export function namespaceOf (key) {
  const parts = Buffer.from(key).toString('latin1').split('/')
  return parts.length >= 3 && parts[0] === '' ? parts[1] : undefined
}
// --kwaai permissive: any value under /kwaai/, first one selected.
export function permissiveValidate (key) {
  if (namespaceOf(key) !== 'kwaai') throw new Error('not a /kwaai/ key')
}
export function permissiveSelect () { return 0 }
