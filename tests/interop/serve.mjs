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
// the computation); an unknown uid answers KeyError('ffn.9.9'). Exit 1 when any failed.
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import protobuf from 'protobufjs'
import { createNode, callUnary, HandlerError, mpDecode, multiaddr, Tuple, BatchTensorDescriptor } from './hivemind-lib.mjs'

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
const dir = mkdtempSync(join(tmpdir(), 'kw-serve-'))
const server = spawn(kwnode, ['serve', '--experts', 'ffn', '--grid', '2', '--hidden', String(HID),
  '--listen', '/ip4/127.0.0.1/tcp/0', '--data-dir', dir], { stdio: ['ignore', 'pipe', 'ignore'] })
let addr = null
await new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error('kwnode serve printed no listen line in 20 s')), 20000)
  createInterface({ input: server.stdout }).on('line', (l) => {
    if (l.startsWith('listen ') && !addr) addr = l.slice(7)
    if (l.startsWith('serving ')) { clearTimeout(timer); resolve() }
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
