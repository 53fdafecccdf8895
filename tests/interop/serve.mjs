#!/usr/bin/env node
// Serving interop on 127.0.0.1 (doc/serve.md): `kwnode serve --experts ffn` (a generated grid
// of hivemind ffn experts) called by the independent js Hivemind peer of hivemind-lib.mjs
// (js-libp2p + protobufjs + @msgpack/msgpack, written from hivemind's sources) as a hivemind
// RemoteExpert would: ConnectionHandler.rpc_info and rpc_forward. The messages are declared
// here from hivemind/proto/runtime.proto (@ 213bff98), not taken from our C code.
//
//   node tests/interop/serve.mjs <kwnode>
//
// Checks: rpc_info's schema dict (forward_schema / outputs_schema / keyword_names with
// BatchTensorDescriptor ext 0x51, as hivemind's ModuleBackend.get_info); rpc_forward of a
// (3, 16) float32 tensor answers one float32 (3, 16) tensor whose rows are LayerNorm outputs
// (weight 1 and bias 0 in the generated experts: mean 0, variance 1, an independent check of
// the computation); an unknown uid answers KeyError('ffn.9.9').
//
// Petals inference (the node also serves the two blocks of the model writer's tiny LLaMA
// checkpoint): a TransformerConnectionHandler.rpc_inference session written from petals
// src/petals/client/inference_session.py and handler.py @ 22afba6 (ExpertRequest{uid chain,
// tensors = [hidden_states, DUMMY prompts, DUMMY_INT64 hypo_ids], metadata = msgpack of
// session_id, step_id, max_length, start_from_position, args_structure}; hivemind's stream
// frames, END_OF_STREAM after the empty request): a 3-token prompt then two 1-token steps
// answer (1, T, hidden) float32 tensors equal (within 1e-4) to the matching rows of one
// unary rpc_forward of the whole 5-token prefix; the session ends with a clean close; a
// max_length above the server's limit ends with the error frame Petals sends.
// alloc_timeout (petals server/memory_cache.py allocate_cache): with every cache slot held,
// a session asking alloc_timeout 0.2 is refused after it with Petals' AllocationFailed text
// ("Could not allocate N within 0.2 seconds"), and one asking 20 s opens (its first step
// answered) as soon as a held session ends. A second js peer opens those (the node serves
// two streams per peer).
// next_servers (petals handler.py _push_outputs): a step naming this js peer as the next
// server is answered and its output pushed to the js rpc_push over the same connection, as
// ExpertRequest{uid of the next span, tensors = [the answer's tensor, prompts, hypo_ids],
// metadata = the step's with session_id = the next one's, next_servers = [], pushed = True}.
// Exit 1 when any failed.
import { execFileSync, spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import protobuf from 'protobufjs'
import {
  createNode, callUnary, HandlerError, mpDecode, mpEncode, multiaddr, Tuple, BatchTensorDescriptor,
  encodeFrame, END_OF_STREAM, Reader, pb, decodePb, serveUnary
} from './hivemind-lib.mjs'

const kwnode = process.argv[2]
if (!kwnode) { console.error('usage: serve.mjs <kwnode>'); process.exit(2) }

let failed = 0
function check (name, cond, detail = '') {
  if (cond) console.log(`ok   ${name}`)
  else { failed++; console.log(`FAIL ${name}${detail ? ': ' + detail : ''}`) }
}

// hivemind/proto/runtime.proto (field numbers are hivemind's)
const root = protobuf.Root.fromJSON({
  nested: {
    ExpertUID: { fields: { uid: { type: 'string', id: 1 } } },
    ExpertInfo: { fields: { serialized_info: { type: 'bytes', id: 1 } } },
    Tensor: {
      fields: {
        buffer: { type: 'bytes', id: 1 },
        size: { rule: 'repeated', type: 'uint32', id: 2 },
        requires_grad: { type: 'bool', id: 3 },
        dtype: { type: 'string', id: 4 },
        compression: { type: 'int32', id: 5 },
        chunks: { type: 'int32', id: 6 }
      }
    },
    ExpertRequest: {
      fields: {
        uid: { type: 'string', id: 1 },
        tensors: { rule: 'repeated', type: 'Tensor', id: 2 },
        metadata: { type: 'bytes', id: 3 }
      }
    },
    ExpertResponse: {
      fields: {
        tensors: { rule: 'repeated', type: 'Tensor', id: 2 },
        metadata: { type: 'bytes', id: 3 }
      }
    }
  }
})
const T = (n) => root.lookupType(n)
const enc = (t, o) => Buffer.from(T(t).encode(T(t).fromObject(o)).finish())
const dec = (t, b) => T(t).toObject(T(t).decode(b), { bytes: Buffer, defaults: true })

const HID = 16

// ---- Petals rpc_inference ------------------------------------------------------------------
// hivemind stream frames: marker || 8-byte big-endian length || protobuf
async function nextFrame (reader) {
  for (;;) {
    if (reader.buf.length >= 9) {
      const len = Number(reader.buf.readBigUInt64BE(1))
      if (reader.buf.length >= 9 + len) {
        const f = { marker: reader.buf[0], payload: reader.buf.subarray(9, 9 + len) }
        reader.buf = reader.buf.subarray(9 + len)
        return f
      }
    }
    if (!(await reader.more())) return null
  }
}
const f32 = (a) => ({ buffer: Buffer.from(a.buffer, a.byteOffset, a.byteLength) })
const floats = (t) => new Float32Array(t.buffer.buffer.slice(t.buffer.byteOffset, t.buffer.byteOffset + t.buffer.length))
const DUMMY = { buffer: Buffer.alloc(0), size: [0], dtype: 'float32' }        // petals DUMMY
const DUMMY_INT64 = { buffer: Buffer.alloc(0), size: [0], dtype: 'int64' }    // DUMMY_INT64
// pack_args_kwargs((hidden, prompts, hypo_ids)): ((b"__T0", b"__T1", b"__T2"), {})
const ARGS = new Tuple([new Tuple([Buffer.from('__T0'), Buffer.from('__T1'), Buffer.from('__T2')]), {}])

async function openSession (node, target) {
  const stream = await node.dialProtocol(target, 'TransformerConnectionHandler.rpc_inference',
    { signal: AbortSignal.timeout(10000) })
  return { stream, reader: new Reader(stream) }
}
function stepRequest (uid, x, T, meta) {
  return encodeFrame(0, enc('ExpertRequest', {
    uid,
    tensors: [{ ...f32(x), size: [1, T, HIDDEN], dtype: 'float32' }, DUMMY, DUMMY_INT64],
    metadata: mpEncode(meta)
  }))
}

async function inference (node, target) {
  const uid = 'tiny-llama.0 tiny-llama.1'
  const sessionId = randomUUID()
  const xs = new Float32Array(5 * HIDDEN).map((_, i) => Math.cos(i * 0.37) * 0.8)
  const { stream, reader } = await openSession(node, target)
  const outs = []
  const steps = [[0, 3], [3, 1], [4, 1]]  // (position, tokens)
  for (const [pos, T] of steps) {
    const meta = { session_id: sessionId, step_id: randomUUID() }
    if (pos === 0) Object.assign(meta, { max_length: 16, points: 0 })
    else meta.start_from_position = pos
    meta.args_structure = ARGS
    stream.send(stepRequest(uid, xs.subarray(pos * HIDDEN, (pos + T) * HIDDEN), T, meta))
    const f = await nextFrame(reader)
    if (!f || f.marker !== 0) {
      check(`rpc_inference: step at ${pos} answered`, false,
        f ? decodePb(pb.RPCError, f.payload).message : 'stream ended')
      return
    }
    const r = dec('ExpertResponse', f.payload)
    const t = r.tensors[0] ?? {}
    check(`rpc_inference: step at ${pos} answers one float32 (1, ${T}, ${HIDDEN}) tensor`,
      r.tensors.length === 1 && t.dtype === 'float32' && t.compression === 0 &&
      t.size.join() === `1,${T},${HIDDEN}` && t.buffer.length === T * HIDDEN * 4)
    outs.push(floats(t))
  }
  // the empty request ends the session, then END_OF_STREAM: the server just closes
  stream.send(encodeFrame(0, Buffer.alloc(0)))
  stream.send(END_OF_STREAM)
  const end = await nextFrame(reader)
  check('rpc_inference: the empty request ends the session with a clean close', end === null,
    end ? `marker ${end.marker}` : '')
  await stream.close().catch(() => {})

  // the same 5 positions through one unary rpc_forward
  const resp = dec('ExpertResponse', await callUnary(node, target, 'TransformerConnectionHandler.rpc_forward',
    enc('ExpertRequest', { uid, tensors: [{ ...f32(xs), size: [1, 5, HIDDEN], dtype: 'float32' }, DUMMY] }), 10000))
  const y = floats(resp.tensors[0])
  const got = new Float32Array(5 * HIDDEN)
  got.set(outs[0], 0)
  got.set(outs[1], 3 * HIDDEN)
  got.set(outs[2], 4 * HIDDEN)
  let worst = 0
  for (let i = 0; i < y.length; i++) worst = Math.max(worst, Math.abs(got[i] - y[i]) / Math.max(1, Math.abs(y[i])))
  check(`rpc_inference: the steps equal a unary forward of the same prefix (within 1e-4; worst ${worst.toExponential(1)})`,
    y.length === 5 * HIDDEN && worst < 1e-4, `worst relative difference ${worst}`)

  // a max_length the server cannot hold: Petals' ValueError, sent as str(e) in an error frame
  const bad = await openSession(node, target)
  bad.stream.send(stepRequest(uid, xs.subarray(0, HIDDEN), 1,
    { session_id: randomUUID(), step_id: randomUUID(), max_length: 100000, args_structure: ARGS }))
  const e = await nextFrame(bad.reader)
  const msg = e && e.marker === 1 ? decodePb(pb.RPCError, e.payload).message : null
  check('rpc_inference: max_length above the limit is refused as Petals words it',
    /^Cannot allocate KV cache for 100000 tokens, max = \d+$/.test(msg ?? ''), String(msg))
  await bad.stream.close().catch(() => {})
}
// ---- alloc_timeout: waiting for a cache slot ----------------------------------------------
async function firstStep (node, target, x, meta) {
  const s = await openSession(node, target)
  s.stream.send(stepRequest('tiny-llama.0 tiny-llama.1', x, 1,
    { session_id: randomUUID(), step_id: randomUUID(), max_length: 8, args_structure: ARGS, ...meta }))
  return s
}
async function endSession (s) {
  s.stream.send(encodeFrame(0, Buffer.alloc(0)))
  s.stream.send(END_OF_STREAM)
  await nextFrame(s.reader)
  await s.stream.close().catch(() => {})
}
const errText = (f) => f && f.marker === 1 ? decodePb(pb.RPCError, f.payload).message : null

async function allocWait (node, node2, target) {
  const x = new Float32Array(HIDDEN).map((_, i) => Math.sin(i) * 0.5)
  // hold every slot: the node's sessions (two by default, one peer's two streams)
  const held = []
  for (let i = 0; i < 2; i++) {
    const s = await firstStep(node, target, x, {})
    const f = await nextFrame(s.reader)
    check(`alloc_timeout: held session ${i} answered`, f && f.marker === 0, String(errText(f)))
    held.push(s)
  }
  const slow = await firstStep(node2, target, x, { alloc_timeout: 20 })
  const t0 = Date.now()
  const quick = await firstStep(node2, target, x, { alloc_timeout: 0.2 })
  const q = await nextFrame(quick.reader)
  const waited = Date.now() - t0
  check(`alloc_timeout: 0.2 s refused after it with Petals' text (${waited} ms)`,
    /^Could not allocate \d+ within 0\.2 seconds$/.test(errText(q) ?? '') && waited >= 150,
    String(errText(q)))
  await quick.stream.close().catch(() => {})
  const pending = nextFrame(slow.reader)
  await endSession(held.shift())
  const f = await Promise.race([pending, new Promise((resolve) => setTimeout(() => resolve('late'), 5000))])
  check('alloc_timeout: the waiting session opens when a slot frees, its step answered',
    f && f !== 'late' && f.marker === 0, f === 'late' ? 'no answer in 5 s' : String(errText(f)))
  await endSession(slow)
  for (const s of held) await endSession(s)
}
// ---- next_servers: the node pushes its outputs to the next server -------------------------
async function pushOnward (node, target) {
  const pushed = []
  await serveUnary(node, 'TransformerConnectionHandler.rpc_push', async (data) => {
    pushed.push(data)
    return enc('ExpertResponse', {})
  })
  const x = new Float32Array(HIDDEN).map((_, i) => Math.cos(i) * 0.5)
  const stepId = randomUUID()
  const s = await openSession(node, target)
  s.stream.send(stepRequest('tiny-llama.0 tiny-llama.1', x, 1, {
    session_id: randomUUID(), step_id: stepId, max_length: 8, args_structure: ARGS,
    next_servers: [[node.peerId.toString(), 'next-session', 0, 1]]
  }))
  const f = await nextFrame(s.reader)
  check('next_servers: the step itself is answered', f && f.marker === 0, String(errText(f)))
  for (let i = 0; i < 50 && !pushed.length; i++) await new Promise((resolve) => setTimeout(resolve, 100))
  check('next_servers: one rpc_push reaches the next server', pushed.length === 1, `${pushed.length} pushes`)
  if (pushed.length && f && f.marker === 0) {
    const req = dec('ExpertRequest', pushed[0])
    const ans = dec('ExpertResponse', f.payload).tensors[0]
    const t = req.tensors[0] ?? {}
    const meta = mpDecode(req.metadata)
    check('next_servers: the pushed uid names the next span', req.uid === 'tiny-llama.0', req.uid)
    check('next_servers: tensors = [the answer as sent, prompts, hypo_ids]', req.tensors.length === 3 &&
      Buffer.compare(Buffer.from(t.buffer), Buffer.from(ans.buffer)) === 0 && t.size.join() === ans.size.join() &&
      t.dtype === 'float32' && req.tensors[2].dtype === 'int64', `${req.tensors.length} tensors`)
    check('next_servers: metadata is the step\'s with the next session_id, the rest of next_servers, pushed',
      meta.session_id === 'next-session' && meta.pushed === true && Array.isArray(meta.next_servers) &&
      meta.next_servers.length === 0 && meta.step_id === stepId && meta.max_length === 8 &&
      meta.args_structure instanceof Tuple, JSON.stringify(Object.keys(meta)))
  }
  await endSession(s)
  await node.unhandle('TransformerConnectionHandler.rpc_push')
}
const dir = mkdtempSync(join(tmpdir(), 'kw-serve-'))
// the tiny LLaMA checkpoint of the model writer built beside kwnode (make tools)
const model = join(dir, 'tiny-llama')
execFileSync(join(dirname(kwnode), 'tools/model/kw_model_write'), ['--out', model, '--preset', 'tiny'],
  { stdio: 'ignore' })
const HIDDEN = JSON.parse(readFileSync(join(model, 'config.json'), 'utf8')).hidden_size
const server = spawn(kwnode, ['serve', '--experts', 'ffn', '--grid', '2', '--hidden', String(HID),
  '--model', model, '--blocks', '0:2',
  '--listen', '/ip4/127.0.0.1/tcp/0', '--data-dir', join(dir, 'data')], { stdio: ['ignore', 'pipe', 'ignore'] })
let addr = null
await new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error('kwnode serve printed no listen line in 20 s')), 20000)
  createInterface({ input: server.stdout }).on('line', (l) => {
    if (l.startsWith('listen ') && !addr) addr = l.slice(7)
    if (l.startsWith('serving blocks')) { clearTimeout(timer); resolve() }
  })
  server.on('exit', (c) => reject(new Error(`kwnode serve exited with ${c}`)))
})

const node = await createNode()
try {
  const target = multiaddr(addr)
  // rpc_info
  const info = dec('ExpertInfo', await callUnary(node, target, 'ConnectionHandler.rpc_info',
    enc('ExpertUID', { uid: 'ffn.1.0' }), 10000))
  const d = mpDecode(info.serialized_info)
  const fs = d.forward_schema
  check('rpc_info: forward_schema is (args tuple, kwargs dict)', fs instanceof Tuple && fs.items.length === 2 &&
    fs.items[0] instanceof Tuple && fs.items[0].items.length === 1 && Object.keys(fs.items[1]).length === 0)
  const btd = fs.items?.[0]?.items?.[0]
  const f = btd instanceof BatchTensorDescriptor ? btd.fields : {}
  check('rpc_info: args BatchTensorDescriptor (None, hid) float32 cpu',
    f.size instanceof Tuple && f.size.items[0] === null && f.size.items[1] === HID &&
    f.dtype === 'torch.float32' && f.layout === 'torch.strided' && f.requires_grad === false &&
    f.pin_memory === false && f.compression === 0 && f.device_type === 'cpu' && f.device_index === null,
    JSON.stringify(f))
  check('rpc_info: BTD keys in hivemind order', Object.keys(f).join() ===
    'size,dtype,layout,requires_grad,pin_memory,compression,device_type,device_index')
  check('rpc_info: outputs_schema is one BTD with requires_grad',
    d.outputs_schema instanceof BatchTensorDescriptor && d.outputs_schema.fields.requires_grad === true)
  check('rpc_info: keyword_names is an empty tuple', d.keyword_names instanceof Tuple && d.keyword_names.items.length === 0)

  // rpc_forward
  const x = new Float32Array(3 * HID).map((_, i) => Math.sin(i * 0.7))
  const resp = dec('ExpertResponse', await callUnary(node, target, 'ConnectionHandler.rpc_forward',
    enc('ExpertRequest', { uid: 'ffn.0.1', tensors: [{ buffer: Buffer.from(x.buffer), size: [3, HID], dtype: 'float32' }] }), 10000))
  const t = resp.tensors[0] ?? {}
  check('rpc_forward: one float32 (3, hid) tensor, NONE', resp.tensors.length === 1 && t.dtype === 'float32' &&
    t.compression === 0 && t.size.join() === `3,${HID}` && t.buffer.length === 3 * HID * 4)
  const y = new Float32Array(t.buffer.buffer.slice(t.buffer.byteOffset, t.buffer.byteOffset + t.buffer.length))
  let rowsOk = y.length === 3 * HID
  for (let r = 0; r < 3 && rowsOk; r++) {
    const row = y.slice(r * HID, (r + 1) * HID)
    const mean = row.reduce((a, b) => a + b, 0) / HID
    const vari = row.reduce((a, b) => a + (b - mean) ** 2, 0) / HID
    rowsOk = Math.abs(mean) < 1e-4 && Math.abs(vari - 1) < 1e-3 && row.every(Number.isFinite)
  }
  check('rpc_forward: every row is a LayerNorm output (mean 0, variance 1)', rowsOk)

  // an unknown expert
  let text = null
  try {
    await callUnary(node, target, 'ConnectionHandler.rpc_forward', enc('ExpertRequest', { uid: 'ffn.9.9' }), 10000)
  } catch (e) { if (e instanceof HandlerError) text = e.message; else throw e }
  check('rpc_forward: unknown uid raises KeyError', text === "KeyError('ffn.9.9')", String(text))

  await inference(node, target)
  await pushOnward(node, target)
  const node2 = await createNode()
  try {
    await allocWait(node, node2, target)
  } finally {
    await node2.stop()
  }
} catch (e) {
  failed++
  console.log(`FAIL ${e.message}`)
} finally {
  await node.stop()
  if (server.exitCode === null && server.signalCode === null) {
    const gone = new Promise((resolve) => server.on('exit', resolve))
    server.kill('SIGINT')
    await gone
  }
  rmSync(dir, { recursive: true, force: true })
}
process.exit(failed ? 1 : 0)
