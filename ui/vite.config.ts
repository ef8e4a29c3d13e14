// Vite builds the one UI both shells use into ui/dist: the gateway serves it at `/` (web
// console) and the Tauri app loads it (`frontendDist = "../ui/dist"`). Only Vite and Preact
// (package.json `dependencies`) are needed here, so `scripts/setup.sh` builds the console
// without the test tools; the tests' settings are in vitest.config.ts.
import { defineConfig } from 'vite';

export default defineConfig({
  root: import.meta.dirname,
  // Relative asset URLs: the same build works at the gateway's `/` and under tauri://.
  base: './',
  // Vite's and Vitest's caches go with the other node_modules, not into ui/.
  cacheDir: '../node_modules/.vite',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022', sourcemap: false },
  // `npm run dev`: the UI with live reload, the API from a running gateway (same origin for
  // the browser, so the console's cookies work). GATEHOUSE_URL picks the gateway.
  server: {
    proxy: Object.fromEntries(
      ['/api', '/auth', '/events'].map((p) => [p, { target: process.env.GATEHOUSE_URL ?? 'http://127.0.0.1:7480', changeOrigin: false }]),
    ),
  },
});
