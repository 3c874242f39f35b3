-- GET /jwks.json (no If-None-Match: every response is the full document). Static request.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

wrk.method = "GET"
wrk.path = "/jwks.json"
