// The C half of tests/interop/kad.mjs: kwnode run / kwnode dht against the js swarm.
import { run } from './kadlib.mjs'

export async function cChecks ({ kwnode, js, tmp, check, rand }) {
  const help = await run(kwnode, ['dht', '--help'], 10000)
  if (help.code !== 0) {
    console.log(`kad: ${kwnode} has no dht command yet: C checks not run`)
    return
  }
}
