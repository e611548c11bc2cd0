"""An actor call that failed reads as one line with the app's own error,
however often the sidecars wrapped it (pure logic: the answers are the
shapes daprd 1.18 returns, one and two actor hops deep)."""

from __future__ import annotations

import json

from lab_env.runtime.actors import ActorCallFailed, innermost_error


def _wrapped(message: str, hops: int) -> str:
    answer = json.dumps({"message": message, "errorCode": "UNKNOWN"})
    for _ in range(hops):
        answer = json.dumps(
            {
                "errorCode": "ERR_ACTOR_INVOKE_METHOD",
                "message": "error invoke actor method: error "
                f"from actor service: (500) {answer} (Error Code: ERR_ACTOR_INVOKE_METHOD, Status Code: 500)",
            }
        )
    return answer


def test_the_apps_own_error_comes_out_of_every_hop_with_its_braces():
    own = "NotImplementedError('exercise not done yet: return {\"ok\": True}')"
    for hops in (1, 2, 3):
        assert innermost_error(_wrapped(own, hops)) == own


def test_the_one_line_names_the_class_without_the_run_suffix_and_a_plain_answer_stays():
    err = ActorCallFailed("MarketManager-b8b152", "market", "Fulfil", 500, _wrapped("ValueError('no terms')", 2))
    assert str(err) == "MarketManager 'market'.Fulfil failed (500): ValueError('no terms')"
    assert err._render_traceback_() == [f"\u274c {err}"]
    assert innermost_error("upstream timed out") == "upstream timed out"
