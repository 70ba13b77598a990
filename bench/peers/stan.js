// node-nats-streaming 0.3.2 peer for bench/run.py: the documented patterns, nothing tuned.
//   node stan.js publish URL CLUSTER CHANNEL FILE              publish each line, every PubAck checked
//   node stan.js durable URL CLUSTER CHANNEL NAME COUNT OUT    durable from the first, manual ack each
"use strict";
const fs = require("fs");
const stan = require("node-nats-streaming");

function lines(path) {
  const data = fs.readFileSync(path);
  const out = [];
  let start = 0;
  for (;;) {
    const end = data.indexOf(10, start);
    if (end < 0) break;
    out.push(data.subarray(start, end));
    start = end + 1;
  }
  return out;
}

function open(url, cluster) {
  const sc = stan.connect(cluster, `node-${process.pid}`, { url, encoding: "binary" });
  return new Promise((resolve, reject) => {
    sc.on("connect", () => resolve(sc));
    sc.on("error", reject);
  });
}

function shut(sc) {
  return new Promise((resolve) => {
    sc.on("close", resolve);
    sc.close();
  });
}

async function publish(url, cluster, channel, path) {
  const sc = await open(url, cluster);
  const all = lines(path);
  let confirmed = 0;
  let done = 0;
  let next = 0;
  let inflight = 0;
  await new Promise((resolve) => {
    if (!all.length) resolve();
    // At most WINDOW PubAcks outstanding (the client's own limit is 16384 and it fails what is over it).
    const pump = () => {
      while (next < all.length && inflight < WINDOW) {
        inflight++;
        sc.publish(channel, all[next++], (err) => {
          inflight--;
          if (!err) confirmed++;
          if (++done === all.length) resolve();
          else pump();
        });
      }
    };
    pump();
  });
  await shut(sc);
  console.log(`published ${confirmed}`);
  if (confirmed !== all.length) process.exit(1);
}
const WINDOW = 8192;

async function durable(url, cluster, channel, name, count, out) {
  const sc = await open(url, cluster);
  const opts = sc.subscriptionOptions().setDeliverAllAvailable().setManualAckMode(true).setDurableName(name);
  opts.setMaxInFlight(1024);
  const fd = fs.openSync(out, "w");
  let got = 0;
  let chunk = [];
  const NL = Buffer.from("\n");
  await new Promise((resolve) => {
    const sub = sc.subscribe(channel, opts);
    sub.on("message", (m) => {
      if (got >= count) return;
      chunk.push(Buffer.from(m.getRawData()), NL);
      m.ack();
      got++;
      if (chunk.length >= 2048 || got >= count) {
        fs.writeSync(fd, Buffer.concat(chunk));
        chunk = [];
      }
      if (got >= count) {
        sub.unsubscribe();
        sub.on("unsubscribed", resolve);
      }
    });
  });
  fs.closeSync(fd);
  await shut(sc);
  console.log(`read ${got}`);
}

const [what, url, cluster, ...rest] = process.argv.slice(2);
const jobs = {
  publish: () => publish(url, cluster, rest[0], rest[1]),
  durable: () => durable(url, cluster, rest[0], rest[1], Number(rest[2]), rest[3]),
};
jobs[what]().catch((err) => {
  console.error(err);
  process.exit(1);
});
