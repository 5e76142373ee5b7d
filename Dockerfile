# strokeview — one image for a Hugging Face Space (sdk: docker) or any container host.
# Build: docker build -t strokeview .   Run: docker run -p 7860:7860 -v sv-data:/data -e SECRET_KEY=… strokeview

# ---- build: dev dependencies, server (tsc) and viewer (vite) -------------------------------
FROM node:22-slim AS build
WORKDIR /app
# onnxruntime-node's install script downloads CUDA files; CPU inference needs none of them.
ENV ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json .npmrc ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build

# ---- runtime: production dependencies and the build only ----------------------------------
FROM node:22-slim AS runtime
WORKDIR /app
ENV NODE_ENV=production \
    ONNXRUNTIME_NODE_INSTALL=skip \
    PORT=7860 \
    HOST=0.0.0.0 \
    DATA_DIR=/data \
    TRUSTED_PROXY_HOPS=1
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY --from=build /app/models ./models
COPY --from=build /app/bin ./bin
# Hugging Face runs Spaces as uid 1000 (the image's `node` user); /data is where persistent
# storage is mounted — without it, results live only as long as the container.
RUN mkdir -p /data && chown -R 1000:1000 /data /app
USER 1000
EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:7860/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# The same command CI runs (src/server/deploy.test.ts): the built server, no build step at start.
CMD ["node", "dist/src/server/index.js"]
