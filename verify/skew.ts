/**
 * `node --import ./verify/skew.ts ...`: shifts this process's wall clock by SHOAL_VERIFY_SKEW_MS.
 * src/clock.ts's systemClock reads Date.now(), so shifting Date.now skews the node's Clock too.
 */
const skew = Number(process.env.SHOAL_VERIFY_SKEW_MS ?? 0);
if (Number.isFinite(skew) && skew !== 0) {
  const realNow = Date.now.bind(Date);
  Date.now = () => realNow() + skew;
}
