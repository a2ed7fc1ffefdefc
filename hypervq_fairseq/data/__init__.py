"""Speech data: the offline demo corpus, fairseq manifests, and the LibriSpeech downloader."""
