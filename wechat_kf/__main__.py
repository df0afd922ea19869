"""``python -m wechat_kf``: the wechat-kf command."""

from wechat_kf.cli import main

main()
