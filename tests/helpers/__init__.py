"""What several test modules share: tiny clinical models, planted clustered runs, the resampling oracle,
hostile answers, fakes of servers and engines, and the repository's folders. No test module imports another."""

from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
FIXTURES = TESTS / "fixtures"
