// The baseline for pg_ves' verification rate: libsodium's own Ed25519
// verify over 32-byte messages (the size of a VES signing hash), one core.
//   raw_verify SECONDS   prints "verifies_per_s=N"
#include <sodium.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

int main(int argc, char **argv) {
  if (sodium_init() < 0) return 1;
  double seconds = argc > 1 ? std::atof(argv[1]) : 3.0;
  unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
  crypto_sign_keypair(pk, sk);
  unsigned char msg[32], sig[crypto_sign_BYTES];
  randombytes_buf(msg, sizeof msg);
  crypto_sign_detached(sig, nullptr, msg, sizeof msg, sk);
  auto start = std::chrono::steady_clock::now();
  long n = 0;
  int bad = 0;
  for (;;) {
    for (int i = 0; i < 256; ++i, ++n)
      bad += crypto_sign_verify_detached(sig, msg, sizeof msg, pk) != 0;
    double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (elapsed >= seconds) {
      std::printf("verifies_per_s=%.0f failures=%d\n", n / elapsed, bad);
      return bad != 0;
    }
  }
}
