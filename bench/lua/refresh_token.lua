-- POST /token grant_type=refresh_token. Refresh tokens rotate (single use), so each thread
-- keeps a pool seeded from refresh_token_<id>.txt: a request takes a token, its response
-- puts the rotated one back. wrk calls response() before the connection's next request(),
-- so a pool of at least one token per connection (plus one for wrk's startup check of
-- request()) never runs dry while responses succeed.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local pool, headers

function init(args)
   pool = read_pool("refresh_token")
   headers = form_headers()
end

function request()
   local token = table.remove(pool)
   if token == nil then
      starved = starved + 1
      token = "pool-exhausted"
   end
   return wrk.format("POST", "/token", headers,
                     "grant_type=refresh_token&refresh_token=" .. token)
end

function response(status, hdrs, body)
   count(status)
   local token = body:match('"refresh_token"%s*:%s*"([^"]+)"')
   if token then
      pool[#pool + 1] = token
   end
end
