"""wechat_kf's measured claims: run ``python -m benchmarks`` after ``pip install -e '.[bench]'``."""
