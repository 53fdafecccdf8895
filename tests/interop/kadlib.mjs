// Shared by tests/interop/kad.mjs and the kad benchmark: start kad-node.mjs processes and the
// C `kwnode` processes, talk to them, and kill every one of them on every exit path.
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const children = new Set()

// Every process started here is killed (SIGKILL) when this process exits, whatever the path.
function track (proc) {
  children.add(proc)
  proc.on('exit', () => children.delete(proc))
  return proc
}
export function killAll () {
  for (const p of children) { try { p.kill('SIGKILL') } catch {} }
  children.clear()
}
process.on('exit', killAll)
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => { killAll(); process.exit(130) })

// A kad-node.mjs process holding `nodes` js DHT nodes; req() sends one JSON request.
export class JsKad {
  constructor (name, extraArgs = []) {
    this.name = name
    this.proc = track(spawn(process.execPath, [join(here, 'kad-node.mjs'), ...extraArgs], { stdio: ['pipe', 'pipe', 'pipe'] }))
    this.pending = new Map()
    this.nextId = 1
    this.nodes = []
    this.stderr = ''
    this.proc.stderr.on('data', (d) => { this.stderr += d; if (this.stderr.length > 100000) this.stderr = this.stderr.slice(-50000) })
    this.readyP = new Promise((resolve, reject) => {
      this.proc.on('exit', (code) => {
        const e = new Error(`${this.name} exited (${code}): ${this.stderr.slice(-1500)}`)
        reject(e)
        for (const p of this.pending.values()) p.reject(e)
        this.pending.clear()
      })
      createInterface({ input: this.proc.stdout }).on('line', (l) => {
        let m
        try { m = JSON.parse(l) } catch { return }
        if (m.event === 'node') this.nodes[m.node] = { peerId: m.peerId, addrs: m.addrs, addr: m.addrs[0] }
        else if (m.event === 'ready') resolve(this)
        else if (m.id != null && this.pending.has(m.id)) {
          const p = this.pending.get(m.id)
          this.pending.delete(m.id)
          p.resolve(m)
        }
      })
    })
  }

  get peerId () { return this.nodes[0].peerId }
  get addr () { return this.nodes[0].addr }
  ready () { return this.readyP }

  // Resolves with the reply object (ok true or false); rejects only if the process dies or
  // does not answer within ms.
  req (op, args = {}, ms = 60000) {
    const id = this.nextId++
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => { this.pending.delete(id); reject(new Error(`${this.name}: no reply to ${op} within ${ms} ms`)) }, ms)
      this.pending.set(id, { resolve: (v) => { clearTimeout(t); resolve(v) }, reject: (e) => { clearTimeout(t); reject(e) } })
      this.proc.stdin.write(JSON.stringify({ id, op, ...args }) + '\n')
    })
  }

  async stop () {
    if (this.proc.exitCode != null) return
    this.proc.stdin.write(JSON.stringify({ op: 'quit' }) + '\n')
    await new Promise((resolve) => {
      const t = setTimeout(() => { this.proc.kill('SIGKILL'); resolve() }, 5000)
      this.proc.on('exit', () => { clearTimeout(t); resolve() })
    })
  }
}

// Runs a command to completion (killed after ms); resolves {code, out, outBuf, err}.
export function run (cmd, args, ms = 60000) {
  return new Promise((resolve) => {
    const p = track(spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }))
    const out = []
    let err = ''
    p.stdout.on('data', (d) => { out.push(d) })
    p.stderr.on('data', (d) => { err += d })
    const t = setTimeout(() => p.kill('SIGKILL'), ms)
    p.on('close', (code, sig) => {
      clearTimeout(t)
      const outBuf = Buffer.concat(out)
      resolve({ code: code ?? sig, out: outBuf.toString('utf8'), outBuf, err })
    })
  })
}

// A long-running process (kwnode run); lines of stdout+stderr are kept for waitFor().
export class Proc {
  constructor (name, cmd, args) {
    this.name = name
    this.proc = track(spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }))
    this.text = ''
    this.waiters = []
    const onLine = (l) => {
      this.text += l + '\n'
      if (this.text.length > 200000) this.text = this.text.slice(-100000)
      this.waiters = this.waiters.filter((w) => { const m = l.match(w.re); if (m) w.resolve(m); return !m })
    }
    createInterface({ input: this.proc.stdout }).on('line', onLine)
    createInterface({ input: this.proc.stderr }).on('line', onLine)
    this.proc.on('exit', (code) => {
      this.exited = code
      for (const w of this.waiters) w.reject(new Error(`${this.name} exited (${code}): ${this.text.slice(-1500)}`))
      this.waiters = []
    })
  }

  // Resolves with the match of the first line (already seen or future) matching re.
  waitFor (re, ms = 20000) {
    for (const l of this.text.split('\n')) { const m = l.match(re); if (m) return Promise.resolve(m) }
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${this.name}: no line matching ${re} within ${ms} ms: ${this.text.slice(-1500)}`)), ms)
      this.waiters.push({ re, resolve: (m) => { clearTimeout(t); resolve(m) }, reject: (e) => { clearTimeout(t); reject(e) } })
    })
  }

  async stop () {
    if (this.exited !== undefined) return
    this.proc.kill('SIGTERM')
    await new Promise((resolve) => {
      const t = setTimeout(() => { this.proc.kill('SIGKILL'); resolve() }, 5000)
      this.proc.on('exit', () => { clearTimeout(t); resolve() })
    })
  }
}

export function vmRssKiB (pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? +m[1] : undefined
  } catch { return undefined }
}
