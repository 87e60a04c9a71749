import time
from export.whisper.sources import base
from export.whisper.convert import load_whisper, suppress_settings
from export.whisper.reference import decoding_rules
s=time.time(); d=base(); print(d, time.time()-s)
m,tok=load_whisper(d); print(tok, m.config.d_model, m.config.decoder_layers, m.config.encoder_layers, m.config.decoder_attention_heads)
sup,b=suppress_settings(d,m); r=decoding_rules(tok,sup,b); print(r.sot_sequence)
