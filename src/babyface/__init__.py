"""babyface: infant facial emotion recognition (happy / sad / neutral), trained from scratch."""

__version__ = "0.1.0"
