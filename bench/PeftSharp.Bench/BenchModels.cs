using PeftSharp.Core;
using PeftSharp.Data;
using PeftSharp.Methods.Lora;
using PeftSharp.Models;
using PeftSharp.Models.Bert;
using PeftSharp.Models.Common;
using PeftSharp.Models.Llama;
using PeftSharp.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Bench;

/// <summary>A model the harness measures: a key for the command line, a label for the report, how to build it.</summary>
internal sealed record BenchModel(string Key, string Label, Func<PretrainedModel> Build);

/// <summary>
/// The three models of the issue, their inputs, their training objective, the LoRA config, and the parameter counts
/// that the FLOP formulas use.
/// </summary>
internal static class BenchModels
{
    private static readonly BenchModel[] s_models =
    [
        new("minilm", "all-MiniLM-L6-v2 (BERT, 22.7M)", () => AutoModel.FromPretrained(BundledAssets.Model(BundledAssets.MiniLmL6V2))),
        new("stories260k", "stories260K (Llama, 0.26M)", () => AutoModel.FromPretrained(BundledAssets.Model(BundledAssets.Stories260K))),
        new("llama100m", "synthetic Llama (110M)", () => AutoModel.FromConfig(SyntheticLlama.Config100M())),
    ];

    public static IReadOnlyList<string> Keys { get; } = [.. s_models.Select(m => m.Key)];

    public static BenchModel Get(string key) =>
        s_models.FirstOrDefault(m => m.Key == key) ?? throw new BenchException($"unknown model '{key}'; known: {string.Join(", ", Keys)}");

    /// <summary>The issue's adapter: LoRA r=8 on every linear layer except the output head (PEFT's <c>all-linear</c>).</summary>
    public static LoraConfig Lora() => new() { Rank = 8, TargetModules = TargetModules.AllLinearLayers };

    /// <summary>Random token ids <c>[batch, length]</c>, seeded, below the model's vocabulary.</summary>
    public static Tensor RandomIds(PretrainedModel model, int batch, int length, long seed)
    {
        var vocab = model.Config.VocabSize ?? throw new BenchException($"{model.Architecture}: config has no vocab_size");
        using var generator = new torch.Generator((ulong)seed);
        return torch.randint(0, vocab, [batch, length], dtype: ScalarType.Int64, generator: generator);
    }

    /// <summary>
    /// The training loss of one batch. Causal LMs: transformers' causal-LM cross-entropy with the ids as labels. The bare
    /// BERT encoder has no head, so a stand-in that reaches every parameter: <c>mean(h²) + mean(pooled²)</c> (its cost is
    /// two elementwise passes, negligible beside the encoder).
    /// </summary>
    public static Tensor Loss(PretrainedModel model, Tensor ids)
    {
        using var scope = torch.NewDisposeScope();
        var output = model.Forward(ids);
        var loss = model.Task == ModelTask.CausalLM
            ? Losses.CausalLm(output.Logits, ids)
            : output.Logits.square().mean() + (output.PooledOutput ?? throw new BenchException("encoder without pooled output")).square().mean();
        return loss.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Makes the output of the token embedding require grad (a forward hook), so that with every parameter frozen a
    /// backward still runs through the whole network: the frozen floor. Dispose to remove the hook.
    /// </summary>
    public static IDisposable GradientFromEmbeddings(PretrainedModel model)
    {
        nn.Module<Tensor, Tensor> embedding = model switch
        {
            LlamaForCausalLM llama => llama.model.embed_tokens,
            BertModel bert => bert.embeddings.word_embeddings,
            _ => throw new BenchException($"no embedding hook for {model.Architecture}"),
        };
        var handle = embedding.register_forward_hook((_, _, output) => output.requires_grad_(true));
        return new Removal(handle.remove);
    }

    private sealed class Removal(Action remove) : IDisposable
    {
        public void Dispose() => remove();
    }

    /// <summary>
    /// N of the FLOP formulas: weights that multiply every token, i.e. the linear layers (a tied lm_head counts as the
    /// vocab × hidden matmul it is). Embedding lookups are gathers and are left out; so is BERT's pooler, which runs on
    /// one token per sequence.
    /// </summary>
    public static long MatmulParameters(nn.Module model)
    {
        long n = 0;
        foreach (var (name, module) in model.named_modules())
        {
            if (name.StartsWith("pooler", StringComparison.Ordinal))
            {
                continue;
            }
            n += module switch
            {
                Linear l => l.weight!.numel(),
                TiedLmHead t => t.Weight.numel(),
                _ => 0,
            };
        }
        return n;
    }

    /// <summary>Σ over layers of heads × head_dim: the width of the attention products (QKᵀ, AV).</summary>
    public static long AttentionWidth(PretrainedModel model)
    {
        var c = model.Config;
        var heads = c.RequireInt("num_attention_heads");
        var headDim = c.GetOptionalInt("head_dim") ?? c.RequireInt("hidden_size") / heads;
        return (long)c.RequireInt("num_hidden_layers") * heads * headDim;
    }

    public static long TotalParameters(nn.Module model) => model.parameters().Sum(p => p.numel());
}
