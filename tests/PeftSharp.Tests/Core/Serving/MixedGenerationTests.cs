using PeftSharp.Core;
using PeftSharp.Generation;
using PeftSharp.Methods.Lora;
using PeftSharp.Models;
using PeftSharp.Tests.Support;
using TorchSharp;
using Generator = PeftSharp.Generation.Generator;

namespace PeftSharp.Tests.Core.Serving;

/// <summary>Generation over a left-padded batch with a KV cache in which each row decodes with its own adapter.</summary>
[Collection(PeftSharp.Tests.Training.TorchRngCollection.Name)]
public class MixedGenerationTests
{
    private static string Stories => SharedPaths.Asset("models", "stories260K");

    [Fact]
    public void Each_row_s_greedy_output_equals_generating_that_prompt_alone_with_its_adapter()
    {
        torch.manual_seed(91);
        using var model = AutoModel.FromPretrained(Stories);
        var targets = TargetModules.Of("q_proj", "v_proj", "down_proj", "embed_tokens");
        var peft = PeftModel.Create(model, new LoraConfig { Rank = 4, Alpha = 8, TargetModules = targets }, "a");
        peft.AddAdapter("b", new LoraConfig { Rank = 2, Alpha = 4, TargetModules = TargetModules.Of("k_proj", "o_proj", "up_proj") });
        peft.AddAdapter("c", new LoraConfig { Rank = 8, Alpha = 8, UseRsLora = true, TargetModules = targets });
        using (torch.no_grad())
        {
            foreach (var name in new[] { "a", "b", "c" })
            {
                peft.SetActiveAdapters(name);
                foreach (var p in peft.TrainableParameters())
                {
                    p.copy_(torch.randn_like(p) * 0.3);
                }
            }
        }
        model.eval();
        var generator = new Generator(model);
        var options = new GenerationOptions { MaxNewTokens = 16, EosTokenIds = [1, 2] };
        int[][] prompts = [[1, 403, 407, 261, 378], [1, 320], [1, 403, 407, 261, 378], [1, 66, 301, 100, 42, 7, 260], [1, 320]];
        string[] rows = ["a", "b", AdapterRouting.BaseName, "c", "a"];

        IReadOnlyList<IReadOnlyList<int>> mixed;
        using (peft.UseAdapterPerRow(rows))
        {
            mixed = generator.Generate(prompts.Select(p => (IReadOnlyList<int>)p).ToList(), options);
        }

        for (var i = 0; i < rows.Length; i++)
        {
            IReadOnlyList<int> alone;
            if (rows[i] == AdapterRouting.BaseName)
            {
                using (peft.DisableAdapters())
                {
                    alone = generator.Generate(prompts[i], options);
                }
            }
            else
            {
                peft.SetActiveAdapters(rows[i]);
                alone = generator.Generate(prompts[i], options);
            }
            Assert.Equal(alone, mixed[i]);
        }
        // Rows 0 and 2 share a prompt; the adapters must change the continuation for the check to mean anything.
        Assert.NotEqual(mixed[0], mixed[2]);
    }
}
