-- POST /token grant_type=authorization_code: one pre-issued, single-use code per request
-- (authorization_code_<id>.txt), redirect_uri as in the authorization request. The response
-- carries an access token, a refresh token and an RS256 ID token.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local codes, next_code, headers, tail

function init(args)
   codes = read_pool("authorization_code")
   next_code = 1
   headers = form_headers()
   tail = "&redirect_uri=" .. env("BENCH_REDIRECT_URI_ENC")
end

function request()
   local code = codes[next_code]
   if code == nil then
      starved = starved + 1
      code = "pool-exhausted"
   else
      next_code = next_code + 1
   end
   return wrk.format("POST", "/token", headers,
                     "grant_type=authorization_code&code=" .. code .. tail)
end
