using PeftSharp.Models.Common;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Models.Gpt2;

/// <summary>
/// transformers' <c>GPT2LMHeadModel</c>: <c>transformer</c> (<see cref="Gpt2Model"/>) and <c>lm_head</c>, tied to
/// <c>transformer.wte.weight</c> unless <c>tie_word_embeddings</c> is false. Logits <c>[B, T, vocab]</c>.
/// </summary>
public sealed class Gpt2LMHeadModel : PretrainedModel
{
    public Gpt2Model transformer;
    public nn.Module<Tensor, Tensor> lm_head;

    public Gpt2LMHeadModel(ModelConfig config, ModelLoadOptions? options = null) : base("GPT2LMHeadModel", config)
    {
        options ??= new ModelLoadOptions();
        TypedConfig = Gpt2Config.From(config);
        transformer = new Gpt2Model(TypedConfig, config, Architecture, options.Device, options.DType);
        lm_head = TypedConfig.TieWordEmbeddings
            ? new TiedLmHead(transformer.TokenEmbedding)
            : nn.Linear(TypedConfig.HiddenSize, TypedConfig.VocabSize, false, options.Device, options.DType);
        RegisterComponents();
    }

    /// <summary>The typed config.</summary>
    public Gpt2Config TypedConfig { get; }

    public override ModelTask Task => ModelTask.CausalLM;

    public override string Architecture => "GPT2LMHeadModel";

    public override IReadOnlyList<string> OutputHeadNames { get; } = ["lm_head"];

    public override int NumLayers => TypedConfig.NumLayers;

    protected internal override string BaseModelPrefix => "transformer";

    protected internal override bool IsIgnorableCheckpointKey(string key) =>
        Gpt2Rules.IsMaskBuffer(key) || (TypedConfig.TieWordEmbeddings && key == "lm_head.weight");

    public override ModelOutput forward(ModelInput input)
    {
        using var scope = torch.NewDisposeScope();
        Gpt2Rules.Validate(this, input, TypedConfig);
        var hidden = transformer.call(input);
        var logits = lm_head.call(hidden);
        return new ModelOutput(logits.MoveToOuterDisposeScope(), hidden.MoveToOuterDisposeScope());
    }
}

/// <summary>
/// transformers' <c>GPT2ForSequenceClassification</c>: <c>transformer</c> and <c>score</c> (<c>[num_labels, n_embd]</c>,
/// no bias) read at each row's last non-pad token (<see cref="Pooling.LastToken"/>). Logits <c>[B, num_labels]</c>.
/// </summary>
public sealed class Gpt2ForSequenceClassification : PretrainedModel
{
    public Gpt2Model transformer;
    public nn.Module<Tensor, Tensor> score;

    public Gpt2ForSequenceClassification(ModelConfig config, ModelLoadOptions? options = null) : base("GPT2ForSequenceClassification", config)
    {
        options ??= new ModelLoadOptions();
        TypedConfig = Gpt2Config.From(config);
        NumLabels = options.NumLabels ?? config.NumLabels;
        transformer = new Gpt2Model(TypedConfig, config, Architecture, options.Device, options.DType);
        score = nn.Linear(TypedConfig.HiddenSize, NumLabels, false, options.Device, options.DType);
        RegisterComponents();
    }

    /// <summary>The typed config.</summary>
    public Gpt2Config TypedConfig { get; }

    /// <summary>Rows of <c>score</c>.</summary>
    public int NumLabels { get; }

    public override ModelTask Task => ModelTask.SequenceClassification;

    public override string Architecture => "GPT2ForSequenceClassification";

    public override IReadOnlyList<string> OutputHeadNames { get; } = ["score"];

    public override int NumLayers => TypedConfig.NumLayers;

    protected internal override string BaseModelPrefix => "transformer";

    protected internal override bool IsIgnorableCheckpointKey(string key) => Gpt2Rules.IsMaskBuffer(key);

    public override ModelOutput forward(ModelInput input)
    {
        using var scope = torch.NewDisposeScope();
        Gpt2Rules.Validate(this, input, TypedConfig);
        var hidden = transformer.call(input);
        var pooled = Pooling.LastToken(hidden, input.InputIds, TypedConfig.PadTokenId, Architecture);
        var logits = score.call(pooled);
        return new ModelOutput(logits.MoveToOuterDisposeScope(), hidden.MoveToOuterDisposeScope());
    }
}

/// <summary>What the two GPT-2 heads share: input checks and the stored-buffer rule.</summary>
internal static class Gpt2Rules
{
    /// <summary>
    /// Older GPT-2 checkpoints (the Hub's <c>gpt2</c>) store the causal-mask buffers <c>attn.bias</c> and
    /// <c>attn.masked_bias</c>; transformers skips them (<c>_keys_to_ignore_on_load_unexpected</c>).
    /// </summary>
    public static bool IsMaskBuffer(string key) =>
        key.EndsWith(".attn.bias", StringComparison.Ordinal) || key.EndsWith(".attn.masked_bias", StringComparison.Ordinal);

    public static void Validate(PretrainedModel model, ModelInput input, Gpt2Config config)
    {
        var name = model.Architecture;
        InputChecks.Ids(name, input.InputIds, config.VocabSize, "input_ids", "vocab_size");
        if (input.TokenTypeIds is not null)
        {
            InputChecks.Ids(name, input.TokenTypeIds, config.VocabSize, "token_type_ids", "vocab_size (GPT-2 embeds token types with wte)", input.InputIds);
        }
        if (input.PositionIds is not null)
        {
            InputChecks.Ids(name, input.PositionIds, config.MaxPositions, "position_ids", "n_positions", input.InputIds);
        }
    }
}
