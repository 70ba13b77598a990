// nats.js 2.29 peer for bench/run.py: the documented JetStream patterns, nothing tuned.
//   node js.js publish URL SUBJECT FILE          js.publish, 4096 acks in flight (sliding), every ack checked
//   node js.js durable URL STREAM NAME COUNT OUT  consume from a durable, ack each, payloads to OUT
//   node js.js ordered URL STREAM COUNT OUT       an ordered consumer, no acks, payloads to OUT
"use strict";
const fs = require("fs");
const { connect, AckPolicy, DeliverPolicy } = require("nats");

const WINDOW = 4096; // Go's default PublishAsyncMaxPending is 4000, natsctl's window 8192

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

async function publish(url, subject, path) {
  const nc = await connect({ servers: url });
  const jsm = await nc.jetstreamManager();
  try {
    await jsm.streams.find(subject);
  } catch (err) {
    await jsm.streams.add({ name: subject.replace(/\./g, "_"), subjects: [subject] });
  }
  const js = nc.jetstream();
  let confirmed = 0;
  const inflight = []; // a sliding window: the oldest ack is awaited once WINDOW are outstanding
  let oldest = 0;
  for (const line of lines(path)) {
    inflight.push(js.publish(subject, line));
    if (inflight.length - oldest >= WINDOW) {
      if ((await inflight[oldest]).seq) confirmed++;
      inflight[oldest++] = undefined;
    }
  }
  for (; oldest < inflight.length; oldest++) if ((await inflight[oldest]).seq) confirmed++;
  await nc.close();
  console.log(`published ${confirmed}`);
}

async function read(iter, count, out, ack) {
  const fd = fs.openSync(out, "w");
  let got = 0;
  let chunk = [];
  for await (const m of iter) {
    chunk.push(m.data, NL);
    if (ack) m.ack();
    got++;
    if (chunk.length >= 2048 || got >= count) {
      fs.writeSync(fd, Buffer.concat(chunk));
      chunk = [];
    }
    if (got >= count) break;
  }
  fs.closeSync(fd);
  return got;
}
const NL = Buffer.from("\n");

async function durable(url, stream, name, count, out) {
  const nc = await connect({ servers: url });
  const jsm = await nc.jetstreamManager();
  await jsm.consumers.add(stream, { durable_name: name, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All });
  const consumer = await nc.jetstream().consumers.get(stream, name);
  const iter = await consumer.consume({ max_messages: 500 });
  const got = await read(iter, count, out, true);
  iter.stop(); // close() would wait for the pull still open
  await nc.flush();
  await nc.close();
  console.log(`read ${got}`);
}

async function ordered(url, stream, count, out) {
  const nc = await connect({ servers: url });
  const consumer = await nc.jetstream().consumers.get(stream);
  const iter = await consumer.consume({ max_messages: 500 });
  const got = await read(iter, count, out, false);
  iter.stop(); // close() would wait for the pull still open
  await nc.flush();
  await nc.close();
  console.log(`read ${got}`);
}

const [what, url, ...rest] = process.argv.slice(2);
const jobs = {
  publish: () => publish(url, rest[0], rest[1]),
  durable: () => durable(url, rest[0], rest[1], Number(rest[2]), rest[3]),
  ordered: () => ordered(url, rest[0], Number(rest[1]), rest[2]),
};
jobs[what]().catch((err) => {
  console.error(err);
  process.exit(1);
});
