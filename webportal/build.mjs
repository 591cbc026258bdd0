// Builds the portal into dist/: esbuild bundles src/main.ts (and the
// terminal chunk it loads on demand) into content-hashed files under
// dist/assets/, index.html is written to name them, and every asset gets a
// .gz beside it that the Go handler serves to clients that accept gzip.
//
// Usage: node build.mjs [--dev]   (--dev: no minification, inline source maps)
import { build } from "esbuild";
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { gzipSync } from "node:zlib";

const dev = process.argv.includes("--dev");
const out = "dist";

// Keep the committed placeholder; everything else is rebuilt.
for (const name of readdirSync(out, { withFileTypes: true })) {
  if (name.name !== ".placeholder") rmSync(join(out, name.name), { recursive: true, force: true });
}
mkdirSync(join(out, "assets"), { recursive: true });

const result = await build({
  entryPoints: ["src/main.ts"],
  bundle: true,
  splitting: true,
  format: "esm",
  target: ["chrome110", "firefox115", "safari16"],
  outdir: out,
  entryNames: "assets/[name]-[hash]",
  chunkNames: "assets/[name]-[hash]",
  assetNames: "assets/[name]-[hash]",
  minify: !dev,
  sourcemap: dev ? "inline" : false,
  metafile: true,
  legalComments: "eof",
  logLevel: "warning",
});

// The entry point's script and its CSS bundle, by their hashed names.
let script = "";
let style = "";
for (const [file, meta] of Object.entries(result.metafile.outputs)) {
  if (meta.entryPoint === "src/main.ts") {
    script = "/" + file.slice(out.length + 1);
    if (meta.cssBundle) style = "/" + meta.cssBundle.slice(out.length + 1);
  }
}
if (!script || !style) throw new Error("build: esbuild produced no entry script or stylesheet");

const html = readFileSync("src/index.html", "utf8")
  .replace("%STYLE%", style)
  .replace("%SCRIPT%", script);
writeFileSync(join(out, "index.html"), html);
writeFileSync(join(out, "favicon.svg"), readFileSync("src/favicon.svg"));

let total = 0;
for (const name of readdirSync(join(out, "assets"))) {
  const path = join(out, "assets", name);
  const body = readFileSync(path);
  total += body.length;
  if (body.length > 1024) writeFileSync(path + ".gz", gzipSync(body, { level: 9 }));
}
console.log(`portal built into ${out}/: ${basename(script)}, ${basename(style)}, ${(total / 1024).toFixed(0)} KiB of assets`);
