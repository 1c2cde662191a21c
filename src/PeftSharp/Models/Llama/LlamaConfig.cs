using PeftSharp.Models.Common;

namespace PeftSharp.Models.Llama;

/// <summary>The three decoders sharing one implementation; they differ in biases, defaults and sliding windows.</summary>
public enum DecoderFamily
{
    /// <summary>transformers' <c>llama</c>: <c>attention_bias</c> on q/k/v/o, <c>mlp_bias</c> on the MLP.</summary>
    Llama,

    /// <summary>transformers' <c>qwen2</c>: q/k/v always biased, o_proj never; MLP without bias.</summary>
    Qwen2,

    /// <summary>transformers' <c>mistral</c>: no biases; <c>sliding_window</c>.</summary>
    Mistral,
}

/// <summary>
/// Typed view of a Llama / Qwen2 / Mistral <c>config.json</c>. Shape keys (<c>vocab_size</c>, <c>hidden_size</c>,
/// <c>intermediate_size</c>, <c>num_hidden_layers</c>, <c>num_attention_heads</c>) are required; other keys take the
/// default of the family's transformers config class.
/// </summary>
public sealed record LlamaConfig
{
    public required DecoderFamily Family { get; init; }
    public required int VocabSize { get; init; }
    public required int HiddenSize { get; init; }
    public required int IntermediateSize { get; init; }
    public required int NumHiddenLayers { get; init; }
    public required int NumAttentionHeads { get; init; }

    /// <summary><c>num_key_value_heads</c>; transformers uses <c>num_attention_heads</c> when it is absent (no GQA).</summary>
    public required int NumKeyValueHeads { get; init; }

    /// <summary><c>head_dim</c>, or <c>hidden_size / num_attention_heads</c> when absent.</summary>
    public required int HeadDim { get; init; }

    public required double RmsNormEps { get; init; }
    public required double RopeTheta { get; init; }
    public required RopeScaling RopeScaling { get; init; }
    public required int MaxPositionEmbeddings { get; init; }
    public required string HiddenAct { get; init; }
    public required bool TieWordEmbeddings { get; init; }

    /// <summary>Bias on q_proj/k_proj/v_proj.</summary>
    public required bool QkvBias { get; init; }

    /// <summary>Bias on o_proj.</summary>
    public required bool OutputBias { get; init; }

    /// <summary>Bias on gate_proj/up_proj/down_proj.</summary>
    public required bool MlpBias { get; init; }

    /// <summary>Attention window in positions when one applies, else null.</summary>
    public required int? SlidingWindow { get; init; }

    public required int? PadTokenId { get; init; }

    /// <summary>Reads the typed view, validating head counts.</summary>
    public static LlamaConfig From(ModelConfig c, DecoderFamily family)
    {
        var hidden = c.RequireInt("hidden_size");
        var heads = c.RequireInt("num_attention_heads");
        var kvHeads = c.GetOptionalInt("num_key_value_heads") ?? heads;
        var layers = c.RequireInt("num_hidden_layers");
        int headDim;
        if (c.GetOptionalInt("head_dim") is int hd)
        {
            headDim = hd;
        }
        else
        {
            if (heads <= 0 || hidden % heads != 0)
            {
                throw new ConfigException(
                    $"{c.Source}: 'head_dim' is missing and hidden_size {hidden} is not divisible by num_attention_heads {heads}");
            }
            headDim = hidden / heads;
        }
        if (kvHeads <= 0 || heads % kvHeads != 0)
        {
            throw new ConfigException(
                $"{c.Source}: num_attention_heads {heads} must be a multiple of num_key_value_heads {kvHeads}");
        }
        var attentionBias = c.GetBool("attention_bias", false);
        return new LlamaConfig
        {
            Family = family,
            VocabSize = c.RequireInt("vocab_size"),
            HiddenSize = hidden,
            IntermediateSize = c.RequireInt("intermediate_size"),
            NumHiddenLayers = layers,
            NumAttentionHeads = heads,
            NumKeyValueHeads = kvHeads,
            HeadDim = headDim,
            RmsNormEps = c.GetDouble("rms_norm_eps", 1e-6),
            RopeTheta = c.GetDouble("rope_theta", 10000.0),
            RopeScaling = RopeScaling.Parse(c),
            MaxPositionEmbeddings = c.GetOptionalInt("max_position_embeddings") ?? family switch
            {
                DecoderFamily.Qwen2 => 32768,
                DecoderFamily.Mistral => 4096 * 32,
                _ => 2048,
            },
            HiddenAct = c.GetString("hidden_act") ?? "silu",
            TieWordEmbeddings = c.GetBool("tie_word_embeddings", false),
            QkvBias = family switch
            {
                DecoderFamily.Qwen2 => true,
                DecoderFamily.Mistral => false,
                _ => attentionBias,
            },
            OutputBias = family == DecoderFamily.Llama && attentionBias,
            MlpBias = family == DecoderFamily.Llama && c.GetBool("mlp_bias", false),
            SlidingWindow = ReadSlidingWindow(c, family, layers),
            PadTokenId = c.PadTokenId,
        };
    }

    private static int? ReadSlidingWindow(ModelConfig c, DecoderFamily family, int layers)
    {
        switch (family)
        {
            case DecoderFamily.Mistral:
                // MistralConfig's default is 4096; an explicit null disables it.
                return c.Raw.ContainsKey("sliding_window") ? c.GetOptionalInt("sliding_window") : 4096;
            case DecoderFamily.Qwen2:
                // Qwen2 uses the window only with use_sliding_window, on layers from max_window_layers on.
                if (!c.GetBool("use_sliding_window", false))
                {
                    return null;
                }
                var fromLayer = c.GetOptionalInt("max_window_layers") ?? 28;
                return layers > fromLayer ? c.GetOptionalInt("sliding_window") ?? 4096 : null;
            default:
                return null;
        }
    }
}
